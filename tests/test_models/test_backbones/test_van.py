# Copyright (c) mmvan contributors. All rights reserved.
import itertools

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from mmvan.converters import convert_state_dict
from mmvan.models import VAN
from mmvan.models.layers import LSKA_KERNELS
from mmvan.testing import TINY, randomize_statistics

# The tiny VAN with two blocks in stage 2, for the drop-path schedule and
# the keys of a stage's second block.
TINY = dict(TINY, depths=[1, 2, 1, 1])

# Parameters of backbone + 1000-class linear head, as in the official code.
LKA_PARAMS = {
    'b0': 4_105_800,
    'b1': 13_861_800,
    'b2': 26_578_472,
    'b3': 44_765_608,
    'b4': 60_283_176,
    'b5': 89_967_688,
    'b6': 199_829_416,
}
LSKA_PARAMS = {'tiny': 4_029_000, 'small': 13_732_776, 'base': 26_292_776}


def num_params_with_head(model, num_classes=1000):
    c = model.embed_dims[-1]
    return sum(p.numel() for p in model.parameters()) + c * num_classes + \
        num_classes


def expected_hw(h, w):

    def down(x, k, s):
        return (x + 2 * (k // 2) - k) // s + 1

    sizes = []
    h, w = down(h, 7, 4), down(w, 7, 4)
    sizes.append((h, w))
    for _ in range(3):
        h, w = down(h, 3, 2), down(w, 3, 2)
        sizes.append((h, w))
    return sizes


@pytest.mark.parametrize('arch', sorted(LKA_PARAMS))
def test_lka_param_counts(arch):
    with torch.device('meta'):
        model = VAN(arch=arch)
    assert num_params_with_head(model) == LKA_PARAMS[arch]


@pytest.mark.parametrize('arch', sorted(LSKA_PARAMS))
def test_lska_param_counts(arch):
    with torch.device('meta'):
        model = VAN(arch=arch, attention='lska', kernel_size=23)
    assert num_params_with_head(model) == LSKA_PARAMS[arch]


def test_arch_aliases():
    for names in (('b0', 't', 'tiny', 'TINY'), ('b1', 's', 'small'),
                  ('b2', 'b', 'base'), ('b3', 'l', 'large')):
        with torch.device('meta'):
            settings = [VAN(arch=n).arch_settings for n in names]
        assert all(s == settings[0] for s in settings)
    assert all(a['mlp_ratios'] == [8, 8, 4, 4] for a in VAN.arch_zoo.values())


def test_bad_arch():
    with pytest.raises(ValueError, match=r"Unknown VAN arch 'b7'.*'b0'"):
        VAN(arch='b7')
    with pytest.raises(ValueError, match='needs exactly the keys'):
        VAN(arch=dict(embed_dims=[8] * 4, depths=[1] * 4))
    with pytest.raises(ValueError, match='needs 4 values'):
        VAN(arch=dict(embed_dims=[8] * 3, depths=[1] * 4, mlp_ratios=[2] * 4))
    with pytest.raises(ValueError, match='Unknown attention'):
        VAN(arch=TINY, attention='swin')
    with pytest.raises(ValueError, match='out_indices'):
        VAN(arch=TINY, out_indices=(4, ))
    with pytest.raises(ValueError, match='frozen_stages'):
        VAN(arch=TINY, frozen_stages=4)


@pytest.mark.parametrize(
    'out_indices',
    [s for r in range(1, 5) for s in itertools.combinations(range(4), r)])
def test_out_indices(out_indices):
    model = VAN(arch=TINY, out_indices=out_indices).eval()
    outs = model(torch.rand(2, 3, 64, 64))
    assert len(outs) == len(out_indices)
    sizes = expected_hw(64, 64)
    for out, i in zip(outs, out_indices):
        assert out.shape == (2, TINY['embed_dims'][i], *sizes[i])


@pytest.mark.parametrize('hw', [(33, 47), (1, 1), (97, 61), (224, 160)])
@pytest.mark.parametrize('attention', ['lka', 'lska'])
def test_odd_input_sizes_batch_one(hw, attention):
    model = VAN(arch=TINY, attention=attention, out_indices=(0, 1, 2, 3))
    model.init_weights()
    model.eval()
    outs = model(torch.rand(1, 3, *hw))
    for out, size, c in zip(outs, expected_hw(*hw), TINY['embed_dims']):
        assert out.shape == (1, c, *size)
        assert torch.isfinite(out).all()
    # Batch size 1 also trains (BatchNorm over the spatial positions).
    model.train()
    if min(hw) >= 33:
        sum(o.sum() for o in model(torch.rand(1, 3, *hw))).backward()


def test_output_is_layer_norm_of_stage():
    model = VAN(arch=TINY, out_indices=(3, )).eval()
    out = model(torch.rand(2, 3, 64, 64))[0]
    # Stage outputs are normalised over channels (LayerNorm, unit affine).
    torch.testing.assert_close(
        out.mean(1), torch.zeros_like(out.mean(1)), atol=1e-5, rtol=0)


@pytest.mark.parametrize('frozen_stages', [-1, 0, 1, 3])
def test_frozen_stages(frozen_stages):
    model = VAN(arch=TINY, frozen_stages=frozen_stages)
    assert model.train() is model
    for i in range(4):
        frozen = i <= frozen_stages
        for module in model.stage_modules(i):
            for p in module.parameters():
                assert p.requires_grad is not frozen
            for m in module.modules():
                if isinstance(m, _BatchNorm):
                    assert m.training is not frozen
    out = model(torch.rand(2, 3, 64, 64))[0]
    if frozen_stages == 3:
        assert not out.requires_grad
        return
    # Frozen stages get no gradient.
    out.sum().backward()
    for i in range(frozen_stages + 1):
        for p in model.stage_modules(i)[1].parameters():
            assert p.grad is None


def test_norm_eval():
    model = VAN(arch=TINY, norm_eval=True)
    assert model.train() is model
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and all(not m.training for m in bns)
    before = [m.running_mean.clone() for m in bns]
    model(torch.rand(2, 3, 64, 64))
    for m, b in zip(bns, before):
        torch.testing.assert_close(m.running_mean, b)
    model = VAN(arch=TINY, norm_eval=False).train()
    assert all(m.training for m in model.modules()
               if isinstance(m, _BatchNorm))


def test_drop_path_schedule():
    model = VAN(arch=TINY, drop_path_rate=0.4)
    rates = [
        getattr(b.drop_path, 'drop_prob', 0.) for i in range(4)
        for b in model.stage_modules(i)[1]
    ]
    # Five blocks (depths 1, 2, 1, 1): 0 to 0.4 in even steps.
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    # Stochastic depth is active in training only.
    model.eval()
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(model(x)[0], model(x)[0])


def _grads_after_step(model, x):
    model.zero_grad()
    out = model(x)
    loss = sum(
        (o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in out)
    loss.backward()
    return out, {
        n: p.grad.clone()
        for n, p in model.named_parameters() if p.grad is not None
    }


@pytest.mark.parametrize('attention', ['lka', 'lska'])
def test_with_cp_equal_outputs_grads_and_statistics(attention):
    torch.manual_seed(0)
    ref = VAN(
        arch=TINY,
        attention=attention,
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3))
    ref.init_weights()
    cp_model = VAN(
        arch=TINY,
        attention=attention,
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        with_cp=True)
    cp_model.load_state_dict(ref.state_dict())
    ref.train()
    cp_model.train()
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    torch.manual_seed(1)
    out_ref, g_ref = _grads_after_step(ref, x)
    torch.manual_seed(1)
    out_cp, g_cp = _grads_after_step(cp_model, x)
    for a, b in zip(out_ref, out_cp):
        torch.testing.assert_close(a, b)
    assert g_ref.keys() == g_cp.keys() and len(g_ref) > 0
    for k in g_ref:
        torch.testing.assert_close(g_ref[k], g_cp[k], msg=k)
    # Recomputation must not update BatchNorm statistics a second time.
    sd_ref, sd_cp = ref.state_dict(), cp_model.state_dict()
    for k in sd_ref:
        torch.testing.assert_close(sd_ref[k], sd_cp[k], msg=k)


@pytest.mark.parametrize('k', sorted(LSKA_KERNELS))
def test_lska_every_kernel_size(k):
    model = VAN(
        arch=TINY, attention='lska', kernel_size=k, out_indices=(0, 3)).eval()
    a, b, d = LSKA_KERNELS[k]
    sgu = model.block1[0].attn.spatial_gating_unit
    assert sgu.conv_spatial_h.kernel_size == (1, b)
    assert sgu.conv_spatial_h.dilation[1] == d
    outs = model(torch.rand(1, 3, 45, 71))
    assert [o.shape[1] for o in outs] == [8, 32]


def test_lska_bad_kernel_size():
    with pytest.raises(
            ValueError, match=r'supported sizes are \[7, 11, 23, '
            r'35, 41, 53\]'):
        VAN(arch=TINY, attention='lska', kernel_size=21)


def test_lka_larger_kernels():
    for k in (21, 23, 35, 53):
        with torch.device('meta'):
            VAN(arch='b0', kernel_size=k)
    with torch.device('meta'):
        p21 = sum(p.numel() for p in VAN(arch='b0').parameters())
        p53 = sum(p.numel()
                  for p in VAN(arch='b0', kernel_size=53).parameters())
    assert p53 > p21


def test_official_key_names():
    keys = set(VAN(arch=TINY).state_dict())
    for key in [
            'patch_embed1.proj.weight', 'patch_embed1.norm.running_var',
            'block1.0.norm1.weight', 'block1.0.attn.proj_1.weight',
            'block1.0.attn.spatial_gating_unit.conv0.weight',
            'block1.0.attn.spatial_gating_unit.conv_spatial.weight',
            'block1.0.attn.spatial_gating_unit.conv1.weight',
            'block1.0.attn.proj_2.bias', 'block1.0.norm2.bias',
            'block1.0.mlp.fc1.weight', 'block1.0.mlp.dwconv.dwconv.weight',
            'block1.0.mlp.fc2.weight', 'block1.0.layer_scale_1',
            'block1.0.layer_scale_2', 'norm1.weight', 'norm4.bias'
    ]:
        assert key in keys, key
    lska = set(VAN(arch=TINY, attention='lska').state_dict())
    for name in ('conv0h', 'conv0v', 'conv_spatial_h', 'conv_spatial_v',
                 'conv1'):
        assert f'block2.1.attn.spatial_gating_unit.{name}.weight' in lska


def test_out_norm_eps():
    assert VAN(arch=TINY).norm1.eps == 1e-6
    assert VAN(arch=TINY, out_norm_cfg=dict(type='LN', eps=1e-5)).norm4.eps \
        == 1e-5


def test_syncbn_config_single_process():
    model = VAN(arch=TINY, norm_cfg=dict(type='SyncBN'))
    assert isinstance(model.block1[0].norm1, torch.nn.SyncBatchNorm)
    model.eval()
    assert model(torch.rand(1, 3, 32, 32))[0].shape == (1, 32, 1, 1)


@pytest.mark.parametrize('arch', ['tiny', 'small', 'base', 'large'])
def test_parity_with_mmpretrain(arch):
    from mmpretrain.models.backbones import VAN as MMPretrainVAN
    torch.manual_seed(0)
    theirs = MMPretrainVAN(
        arch=arch,
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='LN', eps=1e-6))
    theirs.init_weights()
    randomize_statistics(theirs)
    theirs.eval()  # mmpretrain's train() returns None: no chaining
    result = convert_state_dict(
        theirs.state_dict(), 'mmpretrain', task='backbone')
    assert result.arch['arch'] == {
        'tiny': 'b0',
        'small': 'b1',
        'base': 'b2',
        'large': 'b3'
    }[arch]
    ours = VAN(arch=arch, out_indices=(0, 1, 2, 3))
    ours.load_state_dict(result.backbone_state_dict, strict=True)
    ours.eval()
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        for a, b in zip(ours(x), theirs(x)):
            assert a.shape == b.shape
            assert (a - b).abs().max().item() <= 1e-5


@pytest.mark.parametrize('attention,k',
                         [('lka', 21), ('lska', 23), ('lska', 7), ('lka', 53),
                          ('lska', 53)])
def test_deploy_fusion_is_exact(attention, k):
    torch.manual_seed(0)
    model = VAN(
        arch=TINY,
        attention=attention,
        kernel_size=k,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1)
    model.init_weights()
    randomize_statistics(model)
    with pytest.raises(RuntimeError, match='model.eval'):
        model.switch_to_deploy()
    # The refused call changed nothing: no slicing budget either.
    assert not model.deploy
    assert model.memory_budget.nbytes == 0
    model.eval()
    x = torch.randn(2, 3, 75, 53)
    with torch.no_grad():
        ref = model(x)
        assert model.switch_to_deploy() is model
        fused = model(x)
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())
    assert not any('layer_scale' in n for n, _ in model.named_parameters())
    for a, b in zip(ref, fused):
        rel = (a - b).abs().max() / a.abs().max()
        assert rel <= 1e-4
    # Channels-last inputs take oneDNN's fused kernels; same function.
    with torch.no_grad():
        fused_cl = model.to(memory_format=torch.channels_last)(
            x.contiguous(memory_format=torch.channels_last))
    for a, b in zip(ref, fused_cl):
        assert (a - b).abs().max() / a.abs().max() <= 1e-4
    # Dilated depth-wise kernels became dense zero-stuffed ones where small.
    sgu = model.block1[0].attn.spatial_gating_unit
    dilations = [m.dilation for m in sgu.children() if hasattr(m, 'dilation')]
    if k == 53 and attention == 'lka':
        assert (3, 3) in dilations
    else:
        assert all(d == (1, 1) for d in dilations)
    # Idempotent: a second call changes nothing.
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.switch_to_deploy()
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_deploy_runs_stages_over_slices_of_the_batch():
    torch.manual_seed(0)
    model = VAN(arch=TINY, out_indices=(0, 1, 2, 3))
    model.init_weights()
    randomize_statistics(model)
    model.eval()
    x = torch.randn(5, 3, 64, 48)
    calls = []
    model.block1[0].register_forward_pre_hook(
        lambda m, args: calls.append(args[0].shape[0]))
    with torch.no_grad():
        model.switch_to_deploy(chunk_mib=0)
        whole = model(x)
        assert calls == [5]
        # Stage 1's MLP hidden map of one 64x48 image: mlp_ratio * C * 16 *
        # 12 floats; a budget of two images' worth gives slices of 2, 2, 1.
        hidden = model.block1[0].mlp.fc1.out_channels * 16 * 12 * 4
        model.switch_to_deploy(chunk_mib=2.5 * hidden / 2**20)
        calls.clear()
        sliced = model(x)
        assert calls == [2, 2, 1]
    for a, b in zip(whole, sliced):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # Channels-last stays channels-last through the slices.
    model.to(memory_format=torch.channels_last)
    with torch.no_grad():
        out = model(x.contiguous(memory_format=torch.channels_last))
    assert out[0].is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out[-1], whole[-1], rtol=1e-4, atol=1e-5)
    # With autograd the batch is never split (nothing to save there).
    calls.clear()
    model(x)
    assert calls == [5]
    with pytest.raises(ValueError, match='chunk_mib'):
        model.switch_to_deploy(chunk_mib=-1)
    # Only CPU tensors are sliced (other devices cache their memory).
    from mmvan.models.utils import may_slice
    with torch.no_grad():
        assert may_slice(x)
        assert not may_slice(x.to('meta'))
    # Tracing (ONNX export) records whole batches: the traced graph serves
    # another batch size.
    with torch.no_grad():
        traced = torch.jit.trace(model, x[:3], check_trace=False)
        torch.testing.assert_close(
            traced(x)[-1], whole[-1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('channels_last', [False, True])
def test_deploy_mlp_over_bands_of_rows(channels_last):
    torch.manual_seed(0)
    model = VAN(arch=TINY, out_indices=(0, 1, 2, 3))
    model.init_weights()
    randomize_statistics(model)
    model.eval().switch_to_deploy(chunk_mib=0)
    # 75 x 61 input: stage 1 is 19 x 16; the smallest budget gives bands of
    # the minimum 8 rows there: 8, 8 and 3.
    x = torch.randn(1, 3, 75, 61)
    if channels_last:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    rows = []
    model.block1[0].mlp.fc1.register_forward_hook(
        lambda m, args, out: rows.append(out.shape[2]))
    with torch.no_grad():
        whole = model(x)
        assert rows == [19]
        model.switch_to_deploy(chunk_mib=1e-6)
        rows.clear()
        banded = model(x)
    # Each band carries its neighbouring rows for the 3x3 convolution.
    assert rows == [9, 10, 4]
    for a, b in zip(whole, banded):
        assert a.shape == b.shape
        assert a.is_contiguous(memory_format=torch.channels_last) == \
            b.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize('arch,channels,gflops', [('b0', 256, 0.88),
                                                  ('b1', 512, 2.52),
                                                  ('b2', 512, 5.03),
                                                  ('b3', 512, 8.99)])
def test_classifier_flops_match_paper(arch, channels, gflops):
    from mmengine.analysis import get_model_complexity_info
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS

    # Other tests may leave another library's default scope set.
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = PRETRAIN_MODELS.build(
            dict(
                type='ImageClassifier',
                backbone=dict(type='mmvan.VAN', arch=arch),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(
                    type='LinearClsHead',
                    num_classes=1000,
                    in_channels=channels))).eval()
    info = get_model_complexity_info(
        model, input_shape=(3, 224, 224), show_table=False, show_arch=False)
    assert info['flops'] / 1e9 == pytest.approx(gflops, rel=0.02)
    assert info['params'] == LKA_PARAMS[arch]


@pytest.mark.parametrize('attention,k', [('lka', 21), ('lska', 23)])
def test_folded_state_dict_loads_into_deploy_model(attention, k):
    torch.manual_seed(0)
    model = VAN(
        arch=TINY,
        attention=attention,
        kernel_size=k,
        out_indices=(0, 1, 2, 3))
    model.init_weights()
    randomize_statistics(model)
    model.eval()
    x = torch.randn(2, 3, 61, 75)
    with torch.no_grad():
        ref = model(x)
        model.switch_to_deploy()
    folded = model.state_dict()
    # The dilated kernels are saved as released (7 taps, dilation 3), even
    # though the CPU model runs them as dense 19-tap kernels.
    name = 'conv_spatial' if attention == 'lka' else 'conv_spatial_h'
    sgu = model.block1[0].attn.spatial_gating_unit
    assert getattr(sgu, name).dilation == (1, 1)
    assert folded[f'block1.0.attn.spatial_gating_unit.{name}.weight'].shape[
        -1] == 7
    built = VAN(
        arch=TINY,
        attention=attention,
        kernel_size=k,
        out_indices=(0, 1, 2, 3),
        deploy=True)
    assert built.deploy
    assert not any(isinstance(m, _BatchNorm) for m in built.modules())
    built.load_state_dict(folded, strict=True)
    built.eval()
    with torch.no_grad():
        plain = built(x)  # dilated kernels, whole batch
        built.switch_to_deploy(chunk_mib=1e-3)  # dense kernels, slices
        fast = built(x)
    for a, b, c in zip(ref, plain, fast):
        assert (a - b).abs().max() / a.abs().max() <= 1e-4
        assert (a - c).abs().max() / a.abs().max() <= 1e-4
    # Either folded model's state dict loads into the other.
    model.load_state_dict(built.state_dict(), strict=True)
    # An unfolded checkpoint does not fit the folded structure.
    with pytest.raises(RuntimeError, match='norm1'):
        built.load_state_dict(
            VAN(arch=TINY, attention=attention, kernel_size=k).state_dict())


def test_out_channels_and_feature_info_match_the_outputs():
    model = VAN(arch='b0', out_indices=(1, 3)).eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        outs = model(x)
    assert model.out_channels == [o.shape[1] for o in outs] == [64, 256]
    full = VAN(arch='b0', out_indices=(0, 1, 2, 3)).eval()
    with torch.no_grad():
        outs = full(x)
    for info, out in zip(full.feature_info, outs):
        assert info['num_chs'] == out.shape[1]
        assert info['reduction'] == 64 // out.shape[2] == 96 // out.shape[3]
        assert isinstance(
            dict(full.named_modules())[info['module']], torch.nn.LayerNorm)
