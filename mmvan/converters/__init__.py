# Copyright (c) mmvan contributors. All rights reserved.
"""Checkpoint formats as tables (:mod:`.formats`) and the conversion that
applies them (:mod:`.convert`)."""
from .convert import (ConversionError, ConversionResult, StateDict,
                      build_reference, check_keys, convert_state_dict,
                      detect_format, extract_state_dict, infer_arch,
                      nonfinite_keys, rename_keys, strip_prefix)
from .formats import (DENSE_HEADS, FORMATS, FORMATS_BY_NAME, CheckpointFormat,
                      to_mmpretrain_names)

__all__ = [
    'CheckpointFormat', 'ConversionError', 'ConversionResult', 'DENSE_HEADS',
    'FORMATS', 'FORMATS_BY_NAME', 'StateDict', 'build_reference', 'check_keys',
    'convert_state_dict', 'detect_format', 'extract_state_dict', 'infer_arch',
    'nonfinite_keys', 'rename_keys', 'strip_prefix', 'to_mmpretrain_names'
]
