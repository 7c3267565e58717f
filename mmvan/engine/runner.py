# Copyright (c) mmvan contributors. All rights reserved.
"""mmengine's Runner with mmvan's checked weight loading for ``load_from``.

``load_from`` (and ``tools/test.py CONFIG CKPT``) takes a path, an URL or
``mmvan://<name>`` in any checkpoint format mmvan converts, and every tensor
of the model must arrive with its shape (a classification head of another
class count excepted). ``load_from_strict=False`` in the config loads only
what fits and logs the counts. ``resume=True`` without ``load_from``
continues from the newest checkpoint of the work dir that can be resumed
(:func:`mmvan.engine.resume.find_resume_checkpoint`). A resumed run goes on
with the optimizer values of its checkpoint; a config that sets other ones
gets one warning naming them
(:func:`mmvan.engine.resume.changed_optimizer_settings`).

``default_hooks`` takes the keys mmengine and the OpenMMLab bases use
(:data:`DEFAULT_HOOK_KEYS`); another key (a typo such as ``checkpoints``,
which mmengine would register as a second hook) is an error naming the
closest one. Its ``type='CheckpointHook'`` is built as
:class:`mmvan.engine.hooks.SafeCheckpointHook`, which never removes an
outdated checkpoint before the new one is complete.

Each run also keeps its own copy of the config beside its log
(``<work_dir>/<timestamp>/``); a resumed run never overwrites the config
dumped by the run it continues.

The console is short unless ``--verbose`` (``MMVAN_VERBOSE=1``) or a
``log_level`` of DEBUG asks for mmengine's full output: the config, the
model size, the work dir, the data, one line per epoch and the metrics (see
:mod:`mmvan.utils.quiet`: the config's ``log_processor`` of mmengine's type
is built as :class:`mmvan.utils.quiet.ShortLogProcessor`, whose lines carry
the values the console shows). The log file keeps everything. mmengine's
per-parameter initialisation report goes to the log file only
(:class:`mmvan.utils.quiet.InitReportFilter` on the Runner's logger).

The config copies are written atomically, as the checkpoints are (see
:class:`mmvan.engine.hooks.SafeCheckpointHook`).
"""
import difflib
import os.path as osp

import torch
from mmengine.hooks import CheckpointHook
from mmengine.runner import LogProcessor
from mmengine.runner import Runner as MMEngineRunner

from mmvan.converters import nonfinite_keys
from mmvan.utils.atomic import atomic_write
from mmvan.utils.errors import ConfigError
from mmvan.utils.quiet import (ShortLogProcessor, console_is_verbose,
                               quiet_init_report, short_console, stdout_to_log)
from mmvan.zoo import load_source_weights, load_weights
from .fast_path import (apply_layout, choose_layout, describe_convolutions,
                        describe_precision, fuse_optimizer)
from .hooks import SafeCheckpointHook
from .resume import (changed_optimizer_settings, checkpoint_dir,
                     find_resume_checkpoint, optimizer_settings)

# mmengine's own default hooks, and what the mmpretrain, mmdet, mmseg and
# mmpose bases add.
DEFAULT_HOOK_KEYS = ('runtime_info', 'timer', 'sampler_seed', 'logger',
                     'param_scheduler', 'checkpoint', 'visualization',
                     'badcase')


def _short_path(path):
    """``path`` relative to the current folder when it is inside it."""
    path = osp.abspath(path)
    rel = osp.relpath(path)
    return path if rel.startswith('..') else rel


def _dataset_source(dataset):
    """``CustomDataset, data/demo_cls``: the type and root of the dataset
    inside any wrappers."""
    inner = dataset
    while True:
        if hasattr(inner, 'datasets') and inner.datasets:
            inner = inner.datasets[0]
        elif hasattr(inner, 'dataset'):
            inner = inner.dataset
        else:
            break
    root = getattr(inner, 'data_root', None)
    kind = type(inner).__name__
    return f'{kind}, {_short_path(root)}' if root else kind


def check_default_hooks(hooks):
    """Raise a :class:`ConfigError` for a ``default_hooks`` key that is not
    one of :data:`DEFAULT_HOOK_KEYS`."""
    for key in hooks or {}:
        if key in DEFAULT_HOOK_KEYS:
            continue
        close = difflib.get_close_matches(key, DEFAULT_HOOK_KEYS, n=1)
        hint = f"Did you mean '{close[0]}'? " if close else ''
        raise ConfigError(
            f"default_hooks has an unknown key '{key}'. {hint}Its keys are "
            f"{', '.join(DEFAULT_HOOK_KEYS)}; other hooks go in "
            f'custom_hooks.')


def _is_mmengine_checkpoint_hook(kind):
    return kind in ('CheckpointHook', 'mmengine.CheckpointHook',
                    CheckpointHook)


def _quiet_evaluation(loop):
    """What the metrics print (pycocotools' summary) goes to the log file
    when the console is short; the metrics line shows the figures."""
    evaluator = getattr(loop, 'evaluator', None)
    evaluate = getattr(evaluator, 'evaluate', None)
    if evaluate is None or getattr(evaluate, 'mmvan_quiet', False):
        return loop

    def quiet_evaluate(*args, **kwargs):
        with stdout_to_log():
            return evaluate(*args, **kwargs)

    quiet_evaluate.mmvan_quiet = True
    evaluator.evaluate = quiet_evaluate
    return loop


class Runner(MMEngineRunner):
    """:class:`mmengine.runner.Runner` whose ``load_checkpoint`` goes
    through :func:`mmvan.zoo.load_weights`."""

    _data_logged = False
    _consoles = ()

    def build_logger(self, log_level='INFO', log_file=None, **kwargs):
        """mmengine's logger; its console is short (see the module)."""
        logger = super().build_logger(
            log_level=log_level, log_file=log_file, **kwargs)
        quiet_init_report(logger)
        if not console_is_verbose(log_level):
            train_cfg = self.cfg.get('train_cfg') or {}
            self._consoles = short_console(
                logger, max_epochs=train_cfg.get('max_epochs'))
        return logger

    def build_log_processor(self, log_processor):
        """mmengine's; a config's ``LogProcessor`` (the default) becomes
        :class:`mmvan.utils.quiet.ShortLogProcessor` (same arguments)."""
        if isinstance(log_processor, dict) and log_processor.get(
                'type',
                'LogProcessor') in ('LogProcessor', 'mmengine.LogProcessor',
                                    LogProcessor):
            log_processor = dict(log_processor, type=ShortLogProcessor)
        return super().build_log_processor(log_processor)

    def register_default_hooks(self, hooks=None):
        check_default_hooks(hooks)
        super().register_default_hooks(hooks)

    def register_hook(self, hook, priority=None):
        """mmengine's; a config's ``type='CheckpointHook'`` becomes
        :class:`SafeCheckpointHook` (same arguments)."""
        if isinstance(hook, dict) and _is_mmengine_checkpoint_hook(
                hook.get('type')):
            hook = dict(hook, type=SafeCheckpointHook)
        super().register_hook(hook, priority)

    def load_or_resume(self):
        # mmengine would take last_checkpoint as it is (None, an absolute
        # path into another folder) and start from scratch without one.
        if self._resume and self._load_from is None and not self._has_loaded:
            path, skipped = find_resume_checkpoint(self.work_dir,
                                                   checkpoint_dir(self.cfg))
            for skipped_path, reason in skipped:
                self.logger.warning(
                    f'resume: skipped {skipped_path}: {reason}')
            self._load_from = path
        super().load_or_resume()

    def resume(self,
               filename,
               resume_optimizer=True,
               resume_param_scheduler=True,
               map_location='default'):
        """mmengine's; a config whose optimizer values differ from the
        checkpoint's gets one warning (the run continues with the
        checkpoint's: see :func:`changed_optimizer_settings`)."""
        configured = None
        if resume_optimizer:
            configured = optimizer_settings(self.optim_wrapper)
        super().resume(
            filename,
            resume_optimizer=resume_optimizer,
            resume_param_scheduler=resume_param_scheduler,
            map_location=map_location)
        if configured is None:
            return
        resumed = optimizer_settings(self.optim_wrapper)
        warning = changed_optimizer_settings(configured, resumed or {},
                                             filename)
        if warning:
            self.logger.warning(warning)

    def call_hook(self, fn_name, **kwargs):
        # The data sets exist from here on: say how large they are, once.
        if not self._data_logged and fn_name in ('before_train', 'before_val',
                                                 'before_test'):
            self._data_logged = True
            self._log_data(fn_name)
        elif fn_name == 'after_train_epoch':
            for console in self._consoles:
                console.end_epoch()
        super().call_hook(fn_name, **kwargs)

    @staticmethod
    def build_dataloader(dataloader, seed=None, diff_rank_seed=False):
        with stdout_to_log():  # pycocotools' "loading annotations"
            return MMEngineRunner.build_dataloader(
                dataloader, seed=seed, diff_rank_seed=diff_rank_seed)

    def build_val_loop(self, loop):
        with stdout_to_log():  # a COCO metric loads its annotations
            return _quiet_evaluation(super().build_val_loop(loop))

    def build_test_loop(self, loop):
        with stdout_to_log():
            return _quiet_evaluation(super().build_test_loop(loop))

    def _log_setup(self, model):
        """The config, the model's size and the work dir (and log)."""
        if self.cfg.filename:
            self.logger.info(f'config: {_short_path(self.cfg.filename)}')
        params = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters()
                        if p.requires_grad)
        name = type(model).__name__
        backbone = getattr(model, 'backbone', None)
        if backbone is not None:
            name += f' (backbone {type(backbone).__name__})'
        size = f'{params / 1e6:.2f} M parameters'
        if trainable != params:
            size += f', {trainable / 1e6:.2f} M trainable'
        self.logger.info(f'model: {name}, {size}')
        work = f'work dir: {_short_path(self.work_dir)}'
        for handler in self.logger.handlers:
            if hasattr(handler, 'baseFilename'):
                work += f' (log: {_short_path(handler.baseFilename)})'
                break
        self.logger.info(work)

    def _log_data(self, fn_name):
        """``data: train 600 samples, val 200 samples (CustomDataset,
        data/demo_cls)``."""
        loops = dict(
            before_train=(('train', '_train_loop'), ('val', '_val_loop')),
            before_val=(('val', '_val_loop'), ),
            before_test=(('test', '_test_loop'), ))[fn_name]
        counts, sources = [], []
        for name, attr in loops:
            loader = getattr(getattr(self, attr, None), 'dataloader', None)
            dataset = getattr(loader, 'dataset', None)
            if dataset is None:
                continue
            try:
                counts.append(f'{name} {len(dataset)} samples')
            except Exception:  # noqa: B902  (a dataset without a length)
                counts.append(name)
            source = _dataset_source(dataset)
            if source not in sources:
                sources.append(source)
        if counts:
            self.logger.info(f'data: {", ".join(counts)} '
                             f'({"; ".join(sources)})')

    def wrap_model(self, model_wrapper_cfg, model):
        """Apply ``train_fast_path`` (see :mod:`mmvan.engine.fast_path`)
        before mmengine moves and wraps the model."""
        self._log_setup(model)
        settings = self.cfg.get('train_fast_path')
        if settings is not None:
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
            requested = settings.get('layout', 'auto')
            layout = choose_layout(device, requested)
            apply_layout(
                model, layout, any_backbone=requested == 'channels_last')
            optimizer = 'none'
            if isinstance(self.optim_wrapper, dict):
                # Still the config: runner.train() builds it later.
                optimizer = fuse_optimizer(
                    self.optim_wrapper, device,
                    settings.get('fused_optimizer', 'auto'))
            compiled = bool(self.cfg.get('compile'))
            self.logger.info(
                f'training path: layout: {layout}, precision: '
                f'{describe_precision(self.cfg.get("optim_wrapper"))}, '
                f'optimizer: {optimizer}, '
                f'torch.compile: {"on" if compiled else "off"}, '
                f'depth-wise convolutions: '
                f'{describe_convolutions(model, device)} ({device})')
        return super().wrap_model(model_wrapper_cfg, model)

    def dump_config(self):
        name = (
            osp.basename(self.cfg.filename)
            if self.cfg.filename is not None else f'{self.timestamp}.py')
        # What Config.dump writes into a file of that name.
        text = self.cfg.dump()
        atomic_write(
            osp.join(self.log_dir, name), text, mode='w', encoding='utf-8')
        top = osp.join(self.work_dir, name)
        if not (self._resume and osp.exists(top)):
            atomic_write(top, text, mode='w', encoding='utf-8')

    def load_checkpoint(self,
                        filename,
                        map_location='cpu',
                        strict=None,
                        revise_keys=None):
        if strict is None:
            strict = bool(self.cfg.get('load_from_strict', True))
        source = load_source_weights(filename)
        # A training checkpoint keeps its optimizer, message hub and
        # scheduler states for resume(); the weights are the converted ones.
        checkpoint = source.as_checkpoint()
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        load_weights(
            self.model,
            source,
            strict=strict,
            what='the model',
            logger=self.logger.instance_name)
        bad = nonfinite_keys(source.state_dict)
        if bad:
            self.logger.warning(
                f'{filename}: {len(bad)} of {len(source.state_dict)} tensors '
                f'hold NaN or inf (e.g. {", ".join(bad[:3])}); the model '
                f'cannot give meaningful results (was it saved from a '
                f'diverged run?).')
        self._has_loaded = True
        return checkpoint
