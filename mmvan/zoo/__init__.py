# Copyright (c) mmvan contributors. All rights reserved.
"""Released weights: the zoo read from the metafiles, and one loader for
paths, URLs and ``mmvan://`` names in any known checkpoint format."""
from .index import (ModelInfo, UnknownModelError, find_model, list_models,
                    load_index)
from .loader import (ZOO_PREFIX, ManualDownloadError, WeightsMismatchError,
                     load_pretrained, load_source_weights, load_weights,
                     register_schemes, resolve)

__all__ = [
    'ManualDownloadError', 'ModelInfo', 'UnknownModelError',
    'WeightsMismatchError', 'ZOO_PREFIX', 'find_model', 'list_models',
    'load_index', 'load_pretrained', 'load_source_weights', 'load_weights',
    'register_schemes', 'resolve'
]
