"""Image corruptions (ImageNet-C, CIFAR-10-C, Tiny-ImageNet-C): importing a module registers its ops."""

from augforge.ops.image import blur as blur
from augforge.ops.image import color as color
from augforge.ops.image import digital as digital
from augforge.ops.image import geometric as geometric
from augforge.ops.image import noise as noise
from augforge.ops.image import weather as weather
