# Copyright (c) mmvan contributors. All rights reserved.
from .backend_hook import BackendHook
from .checkpoint_hook import SafeCheckpointHook
from .deploy_hook import DeployHook
from .divergence_hook import DivergenceHook
from .effective_batch_hook import EffectiveBatchHook
from .ema_hook import CheckpointWeightsHook, EMAHook
from .epoch_seed_hook import EpochSeedHook
from .preemption_hook import PreemptionHook
from .unreadable_image_hook import UnreadableImageHook

__all__ = [
    'BackendHook', 'DeployHook', 'CheckpointWeightsHook', 'DivergenceHook',
    'EffectiveBatchHook', 'EMAHook', 'EpochSeedHook', 'PreemptionHook',
    'SafeCheckpointHook', 'UnreadableImageHook'
]
