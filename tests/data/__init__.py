"""Test data: the bad-input corpus (bad/) and the script that writes it (make_bad_corpus.py)."""
