# Copyright (c) mmvan contributors. All rights reserved.
"""``VAN(conv_impl=...)``: the Triton kernels against PyTorch's ops (run by
Triton's interpreter on CPU, in a process started with
``TRITON_INTERPRET=1``), the CPU paths unchanged, and a residual stream
that keeps its dtype under autocast."""
import json
import os
import subprocess
import sys

import pytest
import torch

from mmvan.models import VAN
from mmvan.models.backbones.van import VANBlock
from mmvan.models.utils import to_channels_last
from mmvan.testing import TINY
from mmvan.utils.errors import ConfigError

# Narrower than the tiny VAN for the interpreter check, which also runs as
# a script (the interpreter runs each Triton program in Python).
NARROW_ARCH = dict(
    embed_dims=[4, 4, 4, 4], depths=[1, 1, 1, 1], mlp_ratios=[2, 2, 2, 2])
OPS = ('mmvan::depthwise_conv2d', 'mmvan::depthwise_conv2d_input_grad',
       'mmvan::depthwise_conv2d_weight_grad', 'mmvan::dwconv3x3_gelu',
       'mmvan::dwconv3x3_gelu_backward')


def _twins(attention, arch=TINY, **kwargs):
    """Two tiny VANs with the same weights: conv_impl 'triton' and
    'torch'."""
    torch.manual_seed(0)
    models = [
        VAN(arch=arch,
            attention=attention,
            out_indices=(0, 1, 2, 3),
            conv_impl=impl,
            **kwargs) for impl in ('triton', 'torch')
    ]
    models[0].init_weights()
    # Non-zero biases, so that the kernels' bias paths count.
    with torch.no_grad():
        for p in models[0].parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    models[1].load_state_dict(models[0].state_dict())
    return models


def _run_train(model, x):
    x = x.clone().requires_grad_()
    outs = model(x)
    loss = sum(
        (o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in outs)
    loss.backward()
    grads = [x.grad] + [p.grad for p in model.parameters()]
    return [o.detach() for o in outs], grads


def _max_rel(a, b):
    """The largest difference of the tensors ``a`` and ``b``, each relative
    to its tensor's largest value, or to a hundredth of the largest value
    of all (a convolution's bias before a train-mode BatchNorm has a
    gradient of zero plus rounding)."""
    floor = 1e-2 * max(y.abs().max().item() for y in b)
    return max(((x - y).abs().max() / max(y.abs().max(), floor)).item()
               for x, y in zip(a, b))


def interpreter_check(attention):
    """Forward and backward of a narrow tiny VAN (training, with_cp for
    LKA, folded inference) with the Triton kernels against PyTorch's ops;
    returns the largest relative differences and the custom ops that
    ran."""
    x = torch.randn(1, 3, 35, 29, generator=torch.Generator().manual_seed(1))
    attention, _, layout = attention.partition('-')
    result = {}
    with torch.profiler.profile() as prof:
        triton, reference = _twins(
            attention, NARROW_ARCH, with_cp=attention == 'lka')
        if layout == 'cl':
            # Channels-last weights and maps, as the fast path's layout
            # gives them: the kernels of that layout.
            for model in (triton, reference):
                to_channels_last(model)
            x = x.contiguous(memory_format=torch.channels_last)
        got, want = _run_train(triton, x), _run_train(reference, x)
        result['outputs'] = _max_rel(got[0], want[0])
        result['gradients'] = _max_rel(got[1], want[1])
        if attention == 'lska':
            # --amp: bf16 autocast through the kernels (the fused op keeps
            # fp32 weights, the depth-wise op casts them as autocast does),
            # on fresh twins; both against the fp32 result.
            with torch.autocast('cpu', dtype=torch.bfloat16):
                bf16 = [
                    _run_train(m, x) for m in _twins(attention, NARROW_ARCH)
                ]
            result['bf16 dtypes'] = sorted(
                {str(o.dtype)
                 for run in bf16
                 for o in run[0]})
            for name, run in zip(('triton', 'torch'), bf16):
                result[f'bf16 {name} outputs'] = _max_rel(run[0], want[0])
                result[f'bf16 {name} gradients'] = _max_rel(run[1], want[1])
        for model in (triton, reference):
            model.eval().switch_to_deploy()
        with torch.no_grad():
            result['folded outputs'] = _max_rel(triton(x), reference(x))
    names = {e.name for e in prof.events()}
    result['ops'] = sorted(n for n in names if n.startswith('mmvan::'))
    return result


@pytest.mark.slow
@pytest.mark.parametrize('attention', ['lka', 'lska', 'lka-cl'])
def test_triton_matches_torch_under_interpreter(root, attention):
    env = dict(
        os.environ, TRITON_INTERPRET='1', OMP_NUM_THREADS='1', PYTHONPATH=root)
    out = subprocess.run([sys.executable, __file__, attention],
                         cwd=root,
                         env=env,
                         capture_output=True,
                         text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # Every kernel ran (none fell back to PyTorch's op).
    assert set(OPS) <= set(result.pop('ops')), result
    assert 'instead' not in out.stdout + out.stderr
    assert "running PyTorch's operations" not in out.stdout + out.stderr
    # The kernels match F.conv2d to 1e-5 (tests/test_ops); through the
    # network, train-mode BatchNorm amplifies float rounding: PyTorch's own
    # ops, NCHW against channels-last, differ by up to 2e-5 in these
    # gradients.
    # bf16 (LSKA): the Triton path is as close to fp32 as PyTorch's bf16
    # path is (they round differently: the fused kernel keeps fp32
    # weights); a wrong kernel is off by far more.
    if attention == 'lska':
        assert result.pop('bf16 dtypes') == ['torch.bfloat16']
        for what in ('outputs', 'gradients'):
            got = result.pop(f'bf16 triton {what}')
            want = result.pop(f'bf16 torch {what}')
            assert got < 1.5 * want + 1e-2, (what, got, want)
    for what, diff in result.items():
        assert diff < (1e-4 if what == 'gradients' else 1e-5), (what, diff)


def test_conv_impl_is_checked():
    with pytest.raises(ConfigError, match='conv_impl'):
        VAN(arch=TINY, conv_impl='cuda')


@pytest.mark.parametrize('attention', ['lka', 'lska'])
def test_cpu_paths_unchanged(attention):
    """On CPU 'auto' runs the existing paths: no custom op, and outputs
    and gradients bit-identical to 'torch' (which is what ran before)."""
    x = torch.randn(2, 3, 35, 29, generator=torch.Generator().manual_seed(1))
    auto, reference = _twins(attention)
    auto.set_conv_impl('auto')
    with torch.profiler.profile() as prof:
        got = _run_train(auto, x)
    assert not [e.name for e in prof.events() if 'mmvan::' in e.name]
    want = _run_train(reference, x)
    for a, b in zip(got[0] + got[1], want[0] + want[1]):
        assert torch.equal(a, b)


@pytest.mark.parametrize('deploy', [False, True])
def test_block_keeps_bf16_under_autocast(deploy):
    """Under bf16 autocast a block's output stays bf16: the fp32 layer
    scales (or the folded shortcut scale) must not promote the residual
    stream to fp32."""
    torch.manual_seed(0)
    block = VANBlock(8, mlp_ratio=2, deploy=deploy).eval()
    x = torch.randn(2, 8, 9, 7).bfloat16()
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        y = block(x)
    assert y.dtype == torch.bfloat16
    # And the computation is the block's: close to fp32 on the same input.
    with torch.no_grad():
        want = block(x.float())
    assert ((y.float() - want).abs().max() / want.abs().max()) < 3e-2


if __name__ == '__main__':
    print(json.dumps(interpreter_check(sys.argv[1])))
