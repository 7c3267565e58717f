# Copyright (c) mmvan contributors. All rights reserved.
"""mmengine's epoch-based training loop, resumable within an epoch.

mmengine's :class:`~mmengine.runner.EpochBasedTrainLoop` resumes at the
checkpoint's epoch and iteration counters but starts that epoch's data from
its first batch again, so a checkpoint written in the middle of an epoch (a
preempted job's, see :class:`mmvan.engine.hooks.PreemptionHook`) would train
on the epoch's first batches twice and stop past the schedule's end. Here the
batches the checkpoint has already trained on are left out at the sampler:
none of their images is read, and the rest of the epoch comes in the same
order as in the uninterrupted run.
"""
import itertools

from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop as MMEngineEpochLoop
from torch.utils.data import DataLoader

from mmvan.registry import LOOPS

__all__ = ['EpochBasedTrainLoop', 'remaining_batches']


class _SkipBatches:
    """A batch sampler without the first ``skip`` batches of ``sampler``."""

    def __init__(self, sampler, skip):
        self.sampler = sampler
        self.skip = skip

    def __iter__(self):
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self):
        return max(len(self.sampler) - self.skip, 0)


def remaining_batches(loader, skip):
    """A data loader that yields the batches of ``loader`` after its first
    ``skip`` ones, with the same workers, collation and seeds.

    Args:
        loader (DataLoader): The epoch's data loader (its sampler already
            set to the epoch).
        skip (int): Batches to leave out.
    """
    if loader.batch_sampler is None:
        return itertools.islice(loader, skip, None)
    workers = loader.num_workers
    return DataLoader(
        loader.dataset,
        batch_sampler=_SkipBatches(loader.batch_sampler, skip),
        num_workers=workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context,
        generator=loader.generator,
        prefetch_factor=loader.prefetch_factor if workers else None,
        persistent_workers=False,
        pin_memory_device=loader.pin_memory_device)


@LOOPS.register_module()
class EpochBasedTrainLoop(MMEngineEpochLoop):
    """:class:`mmengine.runner.EpochBasedTrainLoop` that, resumed from a
    checkpoint written within an epoch, trains only on the rest of that
    epoch's batches (same arguments)."""

    def run_epoch(self):
        per_epoch = len(self.dataloader)
        done = self._iter - self._epoch * per_epoch
        if not 0 < done <= per_epoch:
            if done:
                print_log(
                    f'resumed at iteration {self._iter} of epoch '
                    f'{self._epoch + 1}, which has {per_epoch} iterations '
                    f'now (other data, batch size or number of processes '
                    f'than the checkpoint had?): the epoch starts from its '
                    f'first batch.',
                    logger='current',
                    level=30)
            return super().run_epoch()
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        print_log(
            f'epoch {self._epoch + 1}: continuing after its first {done} of '
            f'{per_epoch} iterations, which the checkpoint has trained on.',
            logger='current')
        batches = iter(remaining_batches(self.dataloader, done))
        # The random states of the stopped run apply from here on (creating
        # the data iterator draws from torch's generator).
        for hook in self.runner.hooks:
            restore = getattr(hook, 'restore_random_states', None)
            if callable(restore):
                restore(self.runner)
        for idx, data_batch in enumerate(batches, start=done):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1
