"""Data sources: named loaders returning an in-memory, class-indexed SourceData.

    from tfcondense import data
    source = data.load_source("fashion_mnist", limit_per_class=100)
    data.source_names()  # ['cifar10', 'cifar100', 'digits', 'fashion_mnist', ...]

Importing this package does not import TensorFlow; sources that need it import it when
they load.
"""
from __future__ import annotations

from tfcondense.data.sources import (SOURCES, UnknownOptionError, clear_cache,
                                     data_dir_kwargs, load_source, source_names)
from tfcondense.data.info import INFO, SourceInfo, info_or_default, source_info
from tfcondense.data.store import SourceData

# Importing the source modules registers them.
from tfcondense.data import digits as _digits  # noqa: E402,F401
from tfcondense.data import fashion_mnist as _fashion_mnist  # noqa: E402,F401
from tfcondense.data import imagenet_subset as _imagenet_subset  # noqa: E402,F401
from tfcondense.data import speech as _speech  # noqa: E402,F401
from tfcondense.data import tfds_sources as _tfds_sources  # noqa: E402,F401
from tfcondense.data import tiny_imagenet as _tiny_imagenet  # noqa: E402,F401

__all__ = ["INFO", "SOURCES", "SourceData", "SourceInfo", "UnknownOptionError", "clear_cache",
           "data_dir_kwargs", "info_or_default", "load_source", "source_info", "source_names"]
