"""Frequency-domain and mixing kernels of the robustness augmentations (HybridAugment, APR, AugMix).

Pure tensor functions only; the training-time modules that use them live in `augforge.transforms`.
Nothing here registers an operator, so importing the package has no side effects.
"""
