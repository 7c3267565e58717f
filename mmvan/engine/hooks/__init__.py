# Copyright (c) mmvan contributors. All rights reserved.
from .epoch_seed_hook import EpochSeedHook

__all__ = ['EpochSeedHook']
