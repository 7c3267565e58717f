# Copyright (c) mmvan contributors. All rights reserved.
"""``--amp``: bf16 autocast without a loss scaler on a GPU with bf16, fp16
with a loss scaler where asked for or where bf16 is missing, bf16 on CPU
as before; and what the training-path line says."""
from unittest import mock

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from torch._subclasses.fake_tensor import FakeTensorMode

from mmvan.cli import apply_device_fallbacks
from mmvan.engine.fast_path import describe_convolutions, describe_precision
from mmvan.engine.optimizers import BF16AutocastOptimWrapper
from mmvan.models import VAN
from mmvan.ops import depthwise_conv, dwconv_gelu
from mmvan.testing import TINY
from mmvan.utils.errors import UserError


def _cfg(**optim_wrapper):
    return Config(
        dict(
            model=dict(type='mmvan.VAN'),
            optim_wrapper=dict(
                optimizer=dict(type='AdamW', lr=1e-3), **optim_wrapper)))


def _gpu(bf16=True):
    """A machine with a CUDA GPU (with or without bf16), as torch sees
    it."""
    return mock.patch.multiple(
        torch.cuda,
        is_available=mock.Mock(return_value=True),
        is_bf16_supported=mock.Mock(return_value=bf16),
        get_device_name=mock.Mock(return_value='NVIDIA Tesla V100'))


def test_amp_on_cpu_is_bf16_autocast_as_before():
    with mock.patch.object(torch.cuda, 'is_available', return_value=False):
        cfg = apply_device_fallbacks(_cfg(), amp=True)
    assert cfg.optim_wrapper.type == 'mmvan.CPUAmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    assert describe_precision(cfg.optim_wrapper) == 'bf16-autocast'


def test_amp_on_a_bf16_gpu_has_no_loss_scaler():
    with _gpu():
        cfg = apply_device_fallbacks(_cfg(loss_scale='dynamic'), amp=True)
    assert cfg.optim_wrapper.type == 'mmvan.BF16AutocastOptimWrapper'
    assert 'loss_scale' not in cfg.optim_wrapper
    assert 'dtype' not in cfg.optim_wrapper
    assert describe_precision(cfg.optim_wrapper) == 'bf16-autocast'


@pytest.mark.parametrize('bf16, options', [(True, dict(dtype='float16')),
                                           (False, {})])
def test_fp16_where_asked_for_or_without_bf16(bf16, options):
    with _gpu(bf16):
        cfg = apply_device_fallbacks(_cfg(**options), amp=True)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'float16'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    assert describe_precision(
        cfg.optim_wrapper) == 'fp16-autocast with loss scaling'


def test_bf16_asked_for_on_a_gpu_without_it():
    with _gpu(bf16=False), pytest.raises(UserError, match='V100'):
        apply_device_fallbacks(_cfg(dtype='bfloat16'), amp=True)
    with pytest.raises(UserError, match='optim_wrapper.dtype'):
        apply_device_fallbacks(_cfg(dtype='int8'), amp=True)


def test_bf16_wrapper_autocasts_the_forward_and_steps_unscaled():
    model = torch.nn.Linear(4, 3)
    wrapper = BF16AutocastOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.5))
    assert isinstance(wrapper, OptimWrapper)
    assert not hasattr(wrapper, 'loss_scaler')
    x = torch.ones(2, 4)
    before = model.weight.detach().clone()
    with wrapper.optim_context(model):
        y = model(x)
    assert y.dtype == torch.bfloat16
    loss = y.float().sum()
    wrapper.update_params(loss)
    # d loss / d weight = column sums of x over the batch for every
    # output: 2; SGD moves each weight by lr * 2 = 1 exactly.
    assert torch.allclose(
        before - model.weight.detach(), torch.ones(3, 4), atol=1e-6)


def test_training_path_names_the_convolutions():
    model = torch.nn.Sequential(VAN(arch=TINY))
    assert describe_convolutions(model, 'cpu') == 'torch'
    assert describe_convolutions(
        model, 'cuda') == 'triton (fused MLP conv+GELU, fused residual adds)'
    model[0].set_conv_impl('auto', fused_mlp_act=False)
    assert describe_convolutions(model,
                                 'cuda') == 'triton (fused residual adds)'
    model[0].set_conv_impl('auto', fused_residual=False)
    assert describe_convolutions(model, 'cuda') == 'triton'
    # Kernels that failed on the GPU (PyTorch's ops ran) are named.
    with FakeTensorMode():
        x = torch.empty(2, 8, 9, 9, device='cuda', dtype=torch.bfloat16)
        failed = depthwise_conv._variant('weight grad', x, (7, 7))
    with mock.patch.object(depthwise_conv, '_BROKEN', {failed}), \
            mock.patch.object(dwconv_gelu, '_BROKEN', ['RuntimeError: x']):
        assert describe_convolutions(model, 'cuda') == (
            "triton [failed, PyTorch's ops ran: weight grad 7x7 bfloat16, "
            'fused MLP conv+GELU]')
        assert describe_convolutions(model, 'cpu') == 'torch'
    model[0].set_conv_impl('torch')
    assert describe_convolutions(model, 'cuda') == 'torch'
    assert describe_convolutions(torch.nn.Linear(2, 2), 'cuda') == 'torch'
