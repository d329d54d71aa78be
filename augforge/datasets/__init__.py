"""Inputs: readers giving random, deterministic access to decoded samples, and their helpers.

`open_reader(kind, path, **options)` builds any reader ('folder', 'webdataset', 'numpy',
'cifar10'); every reader follows the `Reader` protocol of `augforge.datasets.base` and raises
`BadInputError` for a record it cannot read.
"""

from augforge.datasets.arrays import CIFAR10Reader, NumpyArrayReader, restricted_load
from augforge.datasets.base import Reader, Sample
from augforge.datasets.decode import DEFAULT_MAX_PIXELS, Preprocess, decode_image, load_image
from augforge.datasets.folder import IMAGE_EXTENSIONS, ImageFolderReader
from augforge.datasets.keys import sanitize_key, unique_keys
from augforge.datasets.readers import READER_KINDS, open_reader
from augforge.datasets.tar import WebDatasetReader, expand_braces

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "READER_KINDS",
    "CIFAR10Reader",
    "ImageFolderReader",
    "NumpyArrayReader",
    "Preprocess",
    "Reader",
    "Sample",
    "WebDatasetReader",
    "decode_image",
    "expand_braces",
    "load_image",
    "open_reader",
    "restricted_load",
    "sanitize_key",
    "unique_keys",
]
