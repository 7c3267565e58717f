# Copyright (c) mmvan contributors. All rights reserved.
"""Released weights and every checkpoint load: the zoo read from the
metafiles (:mod:`.index`), the checked download cache (:mod:`.download`)
and the checkpoint module (:mod:`.checkpoint`: read, check, convert on
load, load, save, the ``mmvan://`` / http schemes and the registered
``PretrainedVAN`` initializer)."""
from .checkpoint import (MIRROR_ENV, ZOO_PREFIX, ManualDownloadError,
                         PretrainedVAN, SourceWeights, WeightsMismatchError,
                         check_and_load, is_url, load_pretrained,
                         load_source_weights, load_weights, read_checkpoint,
                         register_schemes, resolve, save_checkpoint, to_mmvan,
                         unwrap, van_prefix)
# (``download`` stays the module's name: the function is
# ``mmvan.zoo.download.download``.)
from .download import ChecksumError, DownloadError, cached_path, file_sha256
from .index import (ModelInfo, UnknownModelError, find_by_url, find_model,
                    list_models, load_index)

__all__ = [
    'ChecksumError', 'DownloadError', 'MIRROR_ENV', 'ManualDownloadError',
    'ModelInfo', 'PretrainedVAN', 'SourceWeights', 'UnknownModelError',
    'WeightsMismatchError', 'ZOO_PREFIX', 'cached_path', 'check_and_load',
    'file_sha256', 'find_by_url', 'find_model', 'is_url', 'list_models',
    'load_index', 'load_pretrained', 'load_source_weights', 'load_weights',
    'read_checkpoint', 'register_schemes', 'resolve', 'save_checkpoint',
    'to_mmvan', 'unwrap', 'van_prefix'
]
