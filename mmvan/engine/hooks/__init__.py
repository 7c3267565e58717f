# Copyright (c) mmvan contributors. All rights reserved.
from .divergence_hook import DivergenceHook
from .epoch_seed_hook import EpochSeedHook
from .unreadable_image_hook import UnreadableImageHook

__all__ = ['DivergenceHook', 'EpochSeedHook', 'UnreadableImageHook']
