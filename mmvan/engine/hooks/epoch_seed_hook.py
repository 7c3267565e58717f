# Copyright (c) mmvan contributors. All rights reserved.
import random
from functools import partial

import numpy as np
import torch
from mmengine.dataset.utils import worker_init_fn
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mmvan.registry import HOOKS


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Seed every random number generator from ``(seed, epoch)`` at the start
    of each training epoch.

    mmengine checkpoints do not store random states, so a run resumed from
    the checkpoint of epoch ``e`` draws different augmentations, Mixup/CutMix
    and drop-path masks from then on than the uninterrupted run did. With
    this hook both runs start every epoch from the same states (Python,
    numpy and torch in the main process, and in each data loader worker), so
    a resumed deterministic run ends with the same weights.

    Args:
        seed (int, optional): Base seed; defaults to the runner's seed.
    """
    priority = 'VERY_HIGH'

    def __init__(self, seed=None):
        self.seed = seed

    def _epoch_seed(self, runner):
        base = self.seed if self.seed is not None else runner.seed
        if base is None:
            base = 0
        return (int(base) + 1_000_003 * (runner.epoch + 1)) % (2**31)

    def before_train_epoch(self, runner):
        rank = get_rank()
        seed = self._epoch_seed(runner)
        random.seed(seed + rank)
        np.random.seed(seed + rank)
        torch.manual_seed(seed + rank)
        loader = runner.train_dataloader
        num_workers = getattr(loader, 'num_workers', 0)
        if num_workers > 0 and not getattr(loader, 'persistent_workers',
                                           False):
            # Workers are created anew each epoch and call this again.
            loader.worker_init_fn = partial(
                worker_init_fn, num_workers=num_workers, rank=rank, seed=seed)
