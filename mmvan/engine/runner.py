# Copyright (c) mmvan contributors. All rights reserved.
"""mmengine's Runner with mmvan's checked weight loading for ``load_from``.

``load_from`` (and ``tools/test.py CONFIG CKPT``) takes a path, an URL or
``mmvan://<name>`` in any checkpoint format mmvan converts, and every tensor
of the model must arrive with its shape (a classification head of another
class count excepted). ``load_from_strict=False`` in the config loads only
what fits and logs the counts. ``--resume`` is mmengine's as it is.

Each run also keeps its own copy of the config beside its log
(``<work_dir>/<timestamp>/``); a resumed run never overwrites the config
dumped by the run it continues.
"""
import os.path as osp

import torch
from mmengine.runner import Runner as MMEngineRunner


class Runner(MMEngineRunner):
    """:class:`mmengine.runner.Runner` whose ``load_checkpoint`` goes
    through :func:`mmvan.zoo.load_weights`."""

    def wrap_model(self, model_wrapper_cfg, model):
        """Apply ``train_fast_path`` (see :mod:`mmvan.engine.fast_path`)
        before mmengine moves and wraps the model."""
        settings = self.cfg.get('train_fast_path')
        if settings is not None:
            from .fast_path import (apply_layout, choose_layout,
                                    describe_precision)
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
            layout = choose_layout(device, settings.get('layout', 'auto'))
            apply_layout(model, layout)
            compiled = bool(self.cfg.get('compile'))
            self.logger.info(
                f'training path: layout: {layout}, precision: '
                f'{describe_precision(self.cfg.get("optim_wrapper"))}, '
                f'torch.compile: {"on" if compiled else "off"} ({device})')
        return super().wrap_model(model_wrapper_cfg, model)

    def dump_config(self):
        name = (
            osp.basename(self.cfg.filename)
            if self.cfg.filename is not None else f'{self.timestamp}.py')
        self.cfg.dump(osp.join(self.log_dir, name))
        top = osp.join(self.work_dir, name)
        if not (self._resume and osp.exists(top)):
            self.cfg.dump(top)

    def load_checkpoint(self,
                        filename,
                        map_location='cpu',
                        strict=None,
                        revise_keys=None):
        from mmvan.zoo.loader import (_van_prefix, check_and_load,
                                      load_source_weights, unwrap)
        if strict is None:
            strict = bool(self.cfg.get('load_from_strict', True))
        model = unwrap(self.model)
        source = load_source_weights(filename)
        # A training checkpoint keeps its optimizer, message hub and
        # scheduler states for resume(); the weights are the converted ones.
        checkpoint = dict(source.raw) if isinstance(source.raw, dict) else {}
        checkpoint.update(state_dict=source.state_dict, meta=source.meta)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        check_and_load(
            model,
            source,
            prefix=_van_prefix(model),
            strict=strict,
            what='the model',
            logger=self.logger.instance_name)
        from mmvan.converters.engine import nonfinite_keys
        bad = nonfinite_keys(source.state_dict)
        if bad:
            self.logger.warning(
                f'{filename}: {len(bad)} of {len(source.state_dict)} tensors '
                f'hold NaN or inf (e.g. {", ".join(bad[:3])}); the model '
                f'cannot give meaningful results (was it saved from a '
                f'diverged run?).')
        self._has_loaded = True
        return checkpoint
