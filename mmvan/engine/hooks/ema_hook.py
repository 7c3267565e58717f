# Copyright (c) mmvan contributors. All rights reserved.
"""An exponential moving average (EMA) of the weights, and which weights of
a checkpoint an evaluation uses.

mmengine's :class:`~mmengine.hooks.EMAHook` keeps the average during
training and saves both weights in each checkpoint: ``state_dict`` holds the
EMA weights (what deployment and ``tools/test.py`` load by default) and
``ema_state_dict`` the weights as trained, under ``module.`` (with the
average's ``steps``), which ``--resume`` swaps back.
"""
import copy

from mmengine.hooks import EMAHook as MMEngineEMAHook
from mmengine.hooks import Hook
from mmengine.runner.checkpoint import load_state_dict

from mmvan.registry import HOOKS

#: timm's default decay 0.9998 per iteration, in mmengine's convention
#: (the weight of the new value).
DEFAULT_MOMENTUM = 2e-4
EMA_WEIGHTS = 'the EMA weights'
RAW_WEIGHTS = 'the weights as trained'


def raw_weights(checkpoint):
    """The weights as trained of a checkpoint saved with an EMA (``None``
    without one): ``ema_state_dict``'s ``module.*`` entries."""
    ema = checkpoint.get('ema_state_dict') if isinstance(checkpoint,
                                                         dict) else None
    if not isinstance(ema, dict):
        return None
    return {
        k[len('module.'):]: v
        for k, v in ema.items() if k.startswith('module.')
    }


def checkpoint_weights(checkpoint, weights='ema'):
    """The weights of a loaded checkpoint that has an EMA beside them:
    ``(state_dict, 'the EMA weights' or 'the weights as trained')``;
    ``(None, None)`` when it has no EMA (the caller takes its only
    weights).

    Knows mmengine's ``EMAHook`` checkpoints (``state_dict`` EMA,
    ``ema_state_dict`` as trained) and timm's (``state_dict`` as trained,
    ``state_dict_ema`` EMA).

    Args:
        weights (str): 'ema' or 'raw'.
    """
    if weights not in ('ema', 'raw'):
        raise ValueError(f"weights must be 'ema' or 'raw', not {weights!r}")
    raw = raw_weights(checkpoint)
    if raw is not None:
        return ((checkpoint['state_dict'],
                 EMA_WEIGHTS) if weights == 'ema' else (raw, RAW_WEIGHTS))
    timm_ema = checkpoint.get('state_dict_ema') if isinstance(
        checkpoint, dict) else None
    if isinstance(timm_ema, dict) and timm_ema and isinstance(
            checkpoint.get('state_dict'), dict):
        return ((timm_ema, EMA_WEIGHTS) if weights == 'ema' else
                (checkpoint['state_dict'], RAW_WEIGHTS))
    return None, None


@HOOKS.register_module()
class EMAHook(MMEngineEMAHook):
    """mmengine's EMAHook (the same arguments) that averages the BatchNorm
    statistics too (``update_buffers=True``, as timm's ``ModelEmaV2``), says
    which weights each validation or test evaluates, and logs when a
    resumed checkpoint has no average to continue.

    Args:
        momentum (float): Weight of the current weights in each update,
            ``ema = (1 - momentum) * ema + momentum * weights``. Defaults
            to 2e-4 (timm's decay 0.9998).
        update_buffers (bool): Average the buffers (BatchNorm running
            statistics) as well. Defaults to True.
        **kwargs: See :class:`mmengine.hooks.EMAHook`.
    """

    def __init__(self,
                 momentum=DEFAULT_MOMENTUM,
                 update_buffers=True,
                 **kwargs):
        super().__init__(
            momentum=momentum, update_buffers=update_buffers, **kwargs)
        self.momentum = momentum
        self._said = set()

    def _say(self, runner, what):
        if what not in self._said:
            self._said.add(what)
            runner.logger.info(
                f'{what}: the EMA weights (momentum {self.momentum}); the '
                f'checkpoints hold them and the weights as trained.')

    def before_val_epoch(self, runner):
        super().before_val_epoch(runner)
        self._say(runner, 'validation')

    def before_test_epoch(self, runner):
        super().before_test_epoch(runner)
        self._say(runner, 'test')

    def after_load_checkpoint(self, runner, checkpoint):
        if not runner.cfg.get('resume') or 'ema_state_dict' in checkpoint:
            super().after_load_checkpoint(runner, checkpoint)
            return
        # A resumed checkpoint without an average: it starts from the
        # weights, and the next update already averages (mmengine's first
        # update would replace them by the weights of that iteration).
        load_state_dict(
            self.ema_model.module,
            copy.deepcopy(checkpoint['state_dict']),
            strict=self.strict_load)
        self.ema_model.steps.fill_(1)
        runner.logger.info('the resumed checkpoint has no EMA weights: the '
                           'average starts from its weights.')


@HOOKS.register_module()
class CheckpointWeightsHook(Hook):
    """Evaluate a checkpoint's EMA weights (``weights='ema'``, the default
    when it has them) or its weights as trained (``'raw'``), and say which.

    Args:
        weights (str): 'ema' or 'raw'.
    """
    priority = 'VERY_HIGH'  # before an EMAHook reads the checkpoint

    def __init__(self, weights='ema'):
        if weights not in ('ema', 'raw'):
            raise ValueError(f"weights must be 'ema' or 'raw', not "
                             f'{weights!r}')
        self.weights = weights

    def after_load_checkpoint(self, runner, checkpoint):
        raw = raw_weights(checkpoint)
        if raw is None:
            note = ('the checkpoint has no EMA weights'
                    if self.weights == 'ema' else 'it has no EMA weights')
            runner.logger.info(f'evaluating the weights as trained ({note}).')
            return
        if self.weights == 'ema':
            runner.logger.info(
                'evaluating the EMA weights (the checkpoint also holds the '
                'weights as trained: --weights raw).')
            return
        state = checkpoint['state_dict']
        missing = [k for k in state if k not in raw]
        if missing:
            runner.logger.warning(
                f'{len(missing)} tensors of the checkpoint have no value as '
                f'trained (e.g. {missing[0]}); their EMA value is kept.')
        # In place: the loader holds this same dict.
        for key in list(state):
            if key in raw:
                state[key] = raw[key]
        runner.logger.info(
            'evaluating the weights as trained (the checkpoint also holds '
            'EMA weights: --weights ema).')
