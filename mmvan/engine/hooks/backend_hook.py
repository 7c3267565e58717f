# Copyright (c) mmvan contributors. All rights reserved.
"""Test a backend model with mmengine's Runner (``tools/test.py
--backend``): mmdeploy's "test the backend model" for mmvan."""
import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmvan.backends import (backend_module, build_backend_model, deploy_model,
                            pick_backend)
from mmvan.registry import HOOKS
from mmvan.zoo import resolve

# Images of the validation loader that calibrate int8.
CALIBRATION_IMAGES = 32


def _where(report):
    if report['file'] is None:
        return 'folded in memory'
    return (f'{report["file"]}, '
            f'{"cached" if report["cached"] else "exported now"}')


@HOOKS.register_module()
class BackendHook(Hook):
    """Once the checkpoint is loaded, put the model's exported part on
    ``backend`` (checked against PyTorch on real images); after testing,
    add the agreement of a reduced precision with fp32 to the metrics.

    Args:
        backend (str): ``'auto'``, ``'pytorch'``, ``'onnxruntime'`` or
            ``'openvino'``.
        precision (str): ``'fp32'``, ``'bf16'`` or ``'int8'``.
        checkpoint (str): The checkpoint (path, URL or zoo name) the
            runner loads: the export is cached beside its file.
    """
    priority = 'LOWEST'

    def __init__(self, backend='auto', precision='fp32', checkpoint=None):
        self.backend, self.precision = backend, precision
        self.checkpoint = checkpoint
        self.module = None

    def _calibration(self, runner, model):
        try:
            loader = runner.val_dataloader
        except Exception:  # noqa: B902 - no val loader in the config
            loader = runner.test_dataloader
        batches, count = [], 0
        with torch.no_grad():
            for data in loader:
                inputs = model.data_preprocessor(data, False)['inputs']
                batches.append(inputs.float().cpu())
                count += len(inputs)
                if count >= CALIBRATION_IMAGES:
                    break
        return batches

    def before_test(self, runner):
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        backend = self.backend
        if backend == 'auto':
            param = next(iter(model.parameters()), None)
            device = param.device.type if param is not None else 'cpu'
            backend = pick_backend(device, self.precision)
        path = None
        if self.checkpoint:
            path = resolve(self.checkpoint)[0]
        if backend == 'pytorch' and self.precision == 'fp32':
            deploy_model(model, 'pytorch')
            print_log(
                'Folded the VAN backbone(s) for inference (PyTorch, fp32).',
                logger='current')
            return
        calibration = (
            self._calibration(runner, model)
            if self.precision == 'int8' else None)
        build_backend_model(
            model,
            backend,
            self.precision,
            path,
            calibration=calibration,
            track_fp32=self.precision != 'fp32',
            cfg=runner.cfg)
        report = model.backend_report
        self.module = backend_module(model)
        print_log(
            f'Backend {backend} ({self.precision}) runs the '
            f'{"whole model" if report["part"] == "model" else "backbone"}'
            f' ({_where(report)}); max '
            f'relative difference to the PyTorch model on the check images: '
            f'{report["max_rel"]:.3g} (allowed {report["tolerance"]:g}).',
            logger='current')

    def after_test_epoch(self, runner, metrics=None):
        if self.module is None or self.module.shadow is None:
            return
        stats = self.module.agreement
        if metrics is None or not stats['images']:
            return
        if self.module.part == 'model':
            agree = 100.0 * stats['top1_same'] / stats['images']
            metrics['agreement/top1_vs_fp32'] = agree
        metrics['agreement/max_rel_vs_fp32'] = stats['max_rel']
        text = (f'{self.precision} vs fp32 ({self.module.backend}) on '
                f'{stats["images"]} test images: ')
        if self.module.part == 'model':
            text += (f'top-1 agreement {agree:.2f} % '
                     f'({stats["top1_same"]}/{stats["images"]}), ')
        text += f'max relative difference {stats["max_rel"]:.3g}'
        print_log(text, logger='current')
