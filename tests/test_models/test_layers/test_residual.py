# Copyright (c) mmvan contributors. All rights reserved.
"""The fused residual epilogue against mmcv's DropPath and the unfused
block: same samples dropped, same values and gradients, one operation."""
import pytest
import torch
from mmcv.cnn.bricks import DropPath

from mmvan.models.backbones.van import VANBlock
from mmvan.models.layers.residual import scaled_residual


def _inputs(seed=0, n=6, c=5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, 7, 9, generator=g).requires_grad_()
    y = torch.randn(n, c, 7, 9, generator=g).requires_grad_()
    ls = (0.5 + torch.rand(c, generator=g)).requires_grad_()
    return x, y, ls


def _grads(out, tensors):
    weight = torch.linspace(-1, 2, out.numel()).view_as(out)
    return torch.autograd.grad((out * weight).sum(), tensors)


@pytest.mark.parametrize('drop_prob', [0., 0.5])
@pytest.mark.parametrize('with_scale', [True, False])
def test_matches_drop_path_of_mmcv(drop_prob, with_scale):
    x, y, ls = _inputs()
    tensors = [x, y, ls] if with_scale else [x, y]
    drop = DropPath(drop_prob).train()
    torch.manual_seed(1)
    scaled = y * ls.view(-1, 1, 1) if with_scale else y
    want = x + drop(scaled)
    want_state = torch.get_rng_state()
    torch.manual_seed(1)
    got = scaled_residual(x, y, ls if with_scale else None, drop_prob, True)
    # The random stream advanced exactly as mmcv's draw advances it.
    assert torch.equal(torch.get_rng_state(), want_state)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    for a, b in zip(_grads(got, tensors), _grads(want, tensors)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    if drop_prob:
        # With p = 0.5 and 6 samples, seed 1 drops some and keeps some:
        # dropped samples are exactly the shortcut.
        dropped = [(want[i] == x[i]).all().item() for i in range(6)]
        assert 0 < sum(dropped) < 6
        for i, d in enumerate(dropped):
            assert torch.equal(got[i], x[i]) == d


def test_eval_mode_draws_nothing():
    x, y, ls = _inputs()
    state = torch.get_rng_state()
    got = scaled_residual(x, y, ls, 0.5, training=False)
    assert torch.equal(torch.get_rng_state(), state)
    torch.testing.assert_close(got, x + y * ls.view(-1, 1, 1))


def test_is_one_operation():
    """The whole epilogue is a single ATen op in the forward pass."""
    x, y, ls = _inputs()
    with torch.no_grad(), torch.profiler.profile() as prof:
        scaled_residual(x, y, ls)
    full_size = [
        e for e in prof.events()
        if e.name.startswith('aten::') and e.name not in (
            'aten::reshape', 'aten::view', 'aten::_reshape_alias', 'aten::to',
            'aten::_to_copy', 'aten::empty_strided', 'aten::copy_',
            'aten::empty', 'aten::as_strided')
    ]
    assert [e.name for e in full_size] == ['aten::addcmul']


def test_keeps_the_stream_dtype_under_autocast():
    x, y, ls = _inputs()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = scaled_residual(x.detach().bfloat16(),
                              y.detach().bfloat16(), ls, 0.5, True)
    assert out.dtype == torch.bfloat16


def _block_pair(drop_path_rate, deploy=False):
    torch.manual_seed(0)
    # conv_impl='triton' on CPU without Triton's interpreter: the
    # depth-wise convolutions fall back to PyTorch's op (logged), the
    # residual epilogue is the fused one; 'torch' runs it unfused.
    blocks = [
        VANBlock(
            8,
            mlp_ratio=2,
            drop_path_rate=drop_path_rate,
            conv_impl=impl,
            deploy=deploy) for impl in ('triton', 'torch')
    ]
    with torch.no_grad():
        for p in blocks[0].parameters():
            p.add_(0.1 * torch.randn_like(p))
    blocks[1].load_state_dict(blocks[0].state_dict())
    return blocks


def test_block_matches_unfused_in_training():
    fused, plain = _block_pair(drop_path_rate=0.5)
    x = torch.randn(8, 8, 9, 7, generator=torch.Generator().manual_seed(1))
    results = []
    for block in (fused, plain):
        block.train()
        xi = x.clone().requires_grad_()
        torch.manual_seed(5)
        with torch.profiler.profile() as prof:
            out = block(xi)
        ops = [e.name for e in prof.events()]
        assert ops.count('aten::addcmul') == (2 if block is fused else 0)
        params = [xi] + list(block.parameters())
        results.append((out, _grads(out, params)))
    (out_f, g_f), (out_p, g_p) = results
    torch.testing.assert_close(out_f, out_p, rtol=1e-5, atol=1e-6)
    for a, b in zip(g_f, g_p):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # Switched off, the block runs the unfused operations bit for bit.
    fused.fused_residual = False
    assert torch.equal(_seeded(fused, x), _seeded(plain, x))


def _seeded(block, x, seed=5):
    torch.manual_seed(seed)
    return block(x)


def test_folded_block_matches_unfused():
    fused, plain = _block_pair(drop_path_rate=0.0)
    for block in (fused, plain):
        block.eval().switch_to_deploy()
    x = torch.randn(2, 8, 9, 7)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), plain(x), rtol=1e-5, atol=1e-6)
