# Copyright (c) mmvan contributors. All rights reserved.
from .layout import takes_channels_last, to_channels_last
from .slicing import (MIN_BAND_ROWS, MemoryBudget, may_slice, run_in_bands,
                      run_in_slices)

__all__ = [
    'MIN_BAND_ROWS', 'MemoryBudget', 'may_slice', 'run_in_bands',
    'run_in_slices', 'takes_channels_last', 'to_channels_last'
]
