# Copyright (c) mmvan contributors. All rights reserved.
import math

from mmengine.hooks import Hook

from mmvan.registry import HOOKS
from mmvan.utils.errors import DivergenceError


def _value(x):
    if x is None:
        return None
    try:
        return float(x.item() if hasattr(x, 'item') else x)
    except (TypeError, ValueError):
        return None


@HOOKS.register_module()
class DivergenceHook(Hook):
    """Stop training at the first non-finite loss or gradient norm.

    Runs before the checkpoint hook, so a diverged state is never saved
    (no NaN ``epoch_*``, ``iter_*``, ``last`` or ``best`` checkpoint). With a
    loss scaler (``AmpOptimWrapper``) a non-finite step is skipped by the
    scaler and is not divergence; ``patience`` consecutive ones are.

    Args:
        patience (int, optional): Consecutive non-finite iterations that
            stop the run. Defaults to 1, or 10 with a loss scaler.
    """
    priority = 'VERY_HIGH'

    def __init__(self, patience=None):
        self.patience = patience
        self._bad = 0
        self._last = None

    def before_train(self, runner):
        if self.patience is None:
            wrapper = runner.optim_wrapper
            scaler = getattr(wrapper, 'loss_scaler', None)
            self.patience = 10 if scaler is not None else 1
        self._bad = 0

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        loss = _value((outputs or {}).get('loss'))
        grad_norm = None
        hub = runner.message_hub
        if 'train/grad_norm' in hub.log_scalars:
            # Written at every step when gradients are clipped.
            grad_norm = _value(hub.log_scalars['train/grad_norm'].current())
        bad = [(name, v)
               for name, v in (('loss', loss), ('gradient norm', grad_norm))
               if v is not None and not math.isfinite(v)]
        if not bad:
            self._bad = 0
            if loss is not None:
                self._last = (runner.iter + 1, loss)
            return
        self._bad += 1
        if self._bad < self.patience:
            return
        what = ', '.join(f'{name} {v}' for name, v in bad)
        last = (f'the last finite loss was {self._last[1]:.4g} at iteration '
                f'{self._last[0]}'
                if self._last else 'no iteration had a finite loss')
        lr = ''
        try:
            lrs = runner.optim_wrapper.get_lr()
            first = next(iter(lrs.values()))
            lr = f' (lr now {first[0]:.3g})'
        except Exception:  # noqa: B902 - the hint is optional
            pass
        raise DivergenceError(
            f'training diverged at iteration {runner.iter + 1} (epoch '
            f'{runner.epoch + 1}): {what}; {last}. Nothing of this state '
            f'was saved. Lower the learning rate{lr} or lengthen its warm-up, '
            f'clip gradients (optim_wrapper.clip_grad=dict(max_norm=5.0)), '
            f'or train without --amp.')
