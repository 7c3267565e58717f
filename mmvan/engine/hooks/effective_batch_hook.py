# Copyright (c) mmvan contributors. All rights reserved.
from mmengine.hooks import Hook

from mmvan.registry import HOOKS
from mmvan.utils.errors import ConfigError


@HOOKS.register_module()
class EffectiveBatchHook(Hook):
    """Say how a run makes its effective batch, and what happens to an
    accumulation the schedule's iterations do not fill.

    :func:`mmvan.engine.scale.set_effective_batch` sets the gradient
    accumulation in the config; this hook logs
    ``effective batch 1024 = 2 processes x 128 x 4 accumulation`` and checks
    that the run is the one the accumulation was computed for.

    Args:
        effective_batch (int): Images per optimizer step.
        per_process (int): Images per process and iteration.
        accumulation (int): Iterations per optimizer step.
    """
    priority = 'VERY_LOW'

    def __init__(self, effective_batch, per_process, accumulation):
        self.effective_batch = effective_batch
        self.per_process = per_process
        self.accumulation = accumulation

    def before_train(self, runner):
        processes = runner.world_size
        got = processes * self.per_process * self.accumulation
        if got != self.effective_batch:
            needed = self.effective_batch // (
                self.per_process * self.accumulation)
            raise ConfigError(
                f'effective batch {self.effective_batch} with '
                f'{self.per_process} per process and {self.accumulation} '
                f'accumulation needs {needed} processes; {processes} run.')
        runner.logger.info(
            f'effective batch {self.effective_batch} = {processes} '
            f'process{"es" if processes != 1 else ""} x '
            f'{self.per_process} x {self.accumulation} accumulation')
        per_epoch = len(runner.train_dataloader)
        total = runner.max_iters
        a = self.accumulation
        if a > 1 and per_epoch % a:
            runner.logger.info(
                f'an epoch has {per_epoch} iterations, not a multiple of '
                f'the accumulation {a}: accumulations run on across the end '
                f'of an epoch (the schedule counts iterations, so the '
                f'learning rate of an optimizer step is that of its last '
                f'iteration).')
        if a > 1 and total % a:
            runner.logger.info(
                f'the run\'s last {total % a} iterations make an optimizer '
                f'step of their own, with their gradients averaged over '
                f'those {total % a} iterations.')
