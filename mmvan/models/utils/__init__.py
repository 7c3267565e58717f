# Copyright (c) mmvan contributors. All rights reserved.
from .layout import memory_format_of, takes_channels_last, to_channels_last
from .slicing import (MIN_BAND_ROWS, MemoryBudget, may_slice, run_in_bands,
                      run_in_slices)

__all__ = [
    'memory_format_of', 'MIN_BAND_ROWS', 'MemoryBudget', 'may_slice',
    'run_in_bands', 'run_in_slices', 'takes_channels_last', 'to_channels_last'
]
