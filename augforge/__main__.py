"""`python -m augforge` runs the CLI."""

from augforge.cli import main

main()
