# Copyright (c) mmvan contributors. All rights reserved.
from .checkpoint_hook import SafeCheckpointHook
from .divergence_hook import DivergenceHook
from .effective_batch_hook import EffectiveBatchHook
from .ema_hook import CheckpointWeightsHook, EMAHook
from .epoch_seed_hook import EpochSeedHook
from .preemption_hook import PreemptionHook
from .unreadable_image_hook import UnreadableImageHook

__all__ = [
    'CheckpointWeightsHook', 'DivergenceHook', 'EffectiveBatchHook', 'EMAHook',
    'EpochSeedHook', 'PreemptionHook', 'SafeCheckpointHook',
    'UnreadableImageHook'
]
