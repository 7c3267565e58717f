# Copyright (c) mmvan contributors. All rights reserved.
"""A few training steps of VAN with mmvan's Triton kernels and fusions
follow the run on PyTorch's ops: on a CUDA GPU the compiled kernels (NCHW
and channels-last, LKA and LSKA, fp32 with TF32 off and bf16 autocast;
skipped without a GPU), on CPU the same comparison with the fused residual
epilogue and PyTorch's convolutions (the kernels' fallback)."""
import contextlib

import pytest
import torch
import torch.nn.functional as F

from mmvan.models import VAN
from mmvan.models.utils import to_channels_last
from mmvan.ops import depthwise_conv, dwconv_gelu
from mmvan.testing import TINY

STEPS = 5


@contextlib.contextmanager
def _exact_float32():
    """TF32 off for PyTorch's convolutions and matrix products."""
    saved = (torch.backends.cudnn.allow_tf32,
             torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        (torch.backends.cudnn.allow_tf32,
         torch.backends.cuda.matmul.allow_tf32) = saved


def train_curve(device,
                conv_impl,
                attention='lka',
                channels_last=False,
                amp=False):
    """Losses of ``STEPS`` SGD steps of a tiny VAN with stochastic depth
    and a linear head, from fixed weights, data and random draws; and
    whether any of mmvan's custom ops ran."""
    torch.manual_seed(0)
    model = VAN(
        arch=TINY,
        attention=attention,
        drop_path_rate=0.3,
        conv_impl=conv_impl).to(device).train()
    head = torch.nn.Linear(model.embed_dims[-1], 4).to(device)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 64, 64, generator=g).to(device)
    target = torch.tensor([0, 1, 2, 3], device=device)
    if channels_last:
        to_channels_last(model)
        x = x.contiguous(memory_format=torch.channels_last)
    params = list(model.parameters()) + list(head.parameters())
    optimizer = torch.optim.SGD(params, lr=0.05, momentum=0.9)
    autocast = torch.autocast(
        device.split(':')[0], dtype=torch.bfloat16, enabled=amp)
    torch.manual_seed(7)  # the stochastic-depth draws
    losses = []
    with torch.profiler.profile() as prof:
        for _ in range(STEPS):
            with autocast:
                logits = head(model(x)[-1].mean((2, 3)))
            loss = F.cross_entropy(logits.float(), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    ran = any(e.name.startswith('mmvan::') for e in prof.events())
    return losses, ran


def _assert_curves_match(got, want, rtol):
    assert len(set(want)) == STEPS, want  # the model trains
    for a, b in zip(got, want):
        assert abs(a - b) <= rtol * abs(b), (got, want)


def test_fused_epilogue_follows_pytorch_on_cpu():
    """The comparison itself, on CPU: 'triton' runs the fused residual
    epilogue with PyTorch's convolutions (no kernels run here)."""
    got, ran = train_curve('cpu', 'triton')
    want, _ = train_curve('cpu', 'torch')
    assert not ran
    _assert_curves_match(got, want, 1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
@pytest.mark.parametrize('attention, channels_last, amp',
                         [('lka', False, False), ('lka', True, False),
                          ('lska', False, False), ('lka', False, True),
                          ('lka', True, True)])
def test_triton_training_follows_pytorch_on_cuda(attention, channels_last, amp,
                                                 monkeypatch):
    """On a GPU the compiled kernels and fusions train as PyTorch's ops
    do: fp32 (TF32 off) to 1e-4 over five steps (train-mode BatchNorm
    amplifies rounding), bf16 autocast to 2e-2; no kernel fell back."""
    monkeypatch.delenv('TRITON_INTERPRET', raising=False)
    with _exact_float32():
        got, ran = train_curve('cuda', 'auto', attention, channels_last, amp)
        want, _ = train_curve('cuda', 'torch', attention, channels_last, amp)
    assert ran
    assert not depthwise_conv.failed_variants()
    assert dwconv_gelu.failure() is None
    _assert_curves_match(got, want, 2e-2 if amp else 1e-4)
