"""Training-time transforms: seeded `torch.nn.Module`s that augment a batch on its device."""

from augforge.transforms.augmix import AugMix
from augforge.transforms.base import SeededTransform
from augforge.transforms.corruption import RandomCorruption
from augforge.transforms.hybrid import APR, HybridAugment, HybridAugmentPP
from augforge.transforms.prime import PRIME, Diffeo, RandomFilter, RandomSmoothColor

__all__ = [
    "APR",
    "PRIME",
    "AugMix",
    "Diffeo",
    "HybridAugment",
    "HybridAugmentPP",
    "RandomCorruption",
    "RandomFilter",
    "RandomSmoothColor",
    "SeededTransform",
]
