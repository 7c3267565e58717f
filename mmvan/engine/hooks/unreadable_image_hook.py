# Copyright (c) mmvan contributors. All rights reserved.
import os
import os.path as osp

from mmengine.hooks import Hook

from mmvan.datasets.loading import LOG_ENV, read_unreadable
from mmvan.registry import HOOKS
from mmvan.utils.errors import DataError


@HOOKS.register_module()
class UnreadableImageHook(Hook):
    """Count the training images that could not be read and stop past a
    share of the data set.

    ``mmvan.LoadImageFromFile(on_error='skip')`` drops such samples and
    lists them in ``<work_dir>/unreadable_images.txt`` (from any worker or
    rank). This hook reads that list every ``interval`` iterations and at
    the end of each epoch, logs the count, and raises a
    :class:`~mmvan.utils.errors.DataError` once more than ``max_share`` of
    the training set is unreadable.

    Args:
        max_share (float): Largest tolerated share of unreadable images.
            Defaults to 0.001 (0.1 %).
        interval (int): Iterations between checks. Defaults to 50.
    """
    priority = 'VERY_HIGH'

    def __init__(self, max_share=0.001, interval=50):
        self.max_share = max_share
        self.interval = interval
        self.log = None
        self.total = 0
        self._reported = 0

    def before_train(self, runner):
        self.log = osp.join(runner.work_dir, 'unreadable_images.txt')
        # Inherited by the data loader workers started after this.
        os.environ[LOG_ENV] = self.log
        self.total = len(runner.train_dataloader.dataset)

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        if self.every_n_train_iters(runner, self.interval):
            self._check(runner)

    def after_train_epoch(self, runner):
        self._check(runner, summary=True)

    def after_train(self, runner):
        if os.environ.get(LOG_ENV) == self.log:
            del os.environ[LOG_ENV]

    def _check(self, runner, summary=False):
        bad = read_unreadable(self.log)
        if not bad:
            return
        share = len(bad) / max(self.total, 1)
        if summary or len(bad) != self._reported:
            runner.logger.warning(
                f'{len(bad)} unreadable training images skipped so far '
                f'({share:.3%} of {self.total}); listed in {self.log}.')
            self._reported = len(bad)
        if share > self.max_share:
            first = '; '.join(f'{p} ({r})' for p, r in list(bad.items())[:3])
            raise DataError(
                f'{len(bad)} of {self.total} training images are '
                f'unreadable ({share:.2%}, more than the allowed '
                f'{self.max_share:.2%}): {first}. The full list is {self.log}'
                f'. Fix or remove them (tools/analysis_tools/check_dataset.py '
                f'CONFIG finds them all), or allow more with --cfg-options '
                f'unreadable_images.max_share=...')
