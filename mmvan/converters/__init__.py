# Copyright (c) mmvan contributors. All rights reserved.
from .engine import (ConversionError, ConversionResult, convert_state_dict,
                     detect_format, extract_state_dict, infer_arch,
                     load_source, rename_keys, save_atomic, sha256_of)
from .formats import (FORMATS, FORMATS_BY_NAME, CheckpointFormat,
                      to_mmpretrain_names)

__all__ = [
    'CheckpointFormat', 'ConversionError', 'ConversionResult', 'FORMATS',
    'FORMATS_BY_NAME', 'convert_state_dict', 'detect_format',
    'extract_state_dict', 'infer_arch', 'load_source', 'rename_keys',
    'save_atomic', 'sha256_of', 'to_mmpretrain_names'
]
