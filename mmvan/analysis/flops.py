# Copyright (c) mmvan contributors. All rights reserved.
"""Parameters and FLOPs of a config's whole model and of its backbone, for
every task: classifiers, detectors (one- and two-stage), segmentors,
panoptic models (Mask2Former) and top-down pose models.

A FLOP is a multiply-add, as in the VAN paper: torch's FlopCounterMode
counts the convolutions, linear layers and matrix products (attention
included) and the total is halved; normalisations, activations and
element-wise products are not counted. The model is built and run on the
meta device (no weights, no memory); a model that reads
tensor values during its forward (Mask2Former's deformable attention) runs
on the CPU instead.

Two-stage detectors are counted as mmdet 2's ``forward_dummy`` did, by
which the published detector FLOPs were measured: backbone, neck and RPN
head on the image, each RoI box head on 1000 proposals and each mask head
on 100 RoIs (RoI extraction itself counts nothing).

Default input (H W): 224 224 for classifiers, 512 512 for segmentors,
800 1280 for detectors (the paper's 1280x800), the config's ``image_size``
(1024 1024) for Mask2Former and the codec's input size for pose models.
"""
import torch
from mmengine.registry import MODELS, DefaultScope, init_default_scope
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mmvan.models.layers.phase_conv import plain_dilated_convolutions
from mmvan.utils.config import load_config, sync_bn_to_bn
from mmvan.utils.errors import UserError

__all__ = [
    'NUM_PROPOSALS', 'NUM_MASK_ROIS', 'CONVENTION', 'TWO_STAGE_CONVENTION',
    'family', 'default_shape', 'two_stage_dummy_forward', 'model_forward',
    'count', 'complexity', 'report'
]

# mmdet 2's forward_dummy: RoI box heads on this many proposals, mask heads
# on this many RoIs.
NUM_PROPOSALS = 1000
NUM_MASK_ROIS = 100

CONVENTION = ('FLOPs are multiply-adds of convolutions, linear layers and '
              'matrix products (torch FlopCounterMode / 2)')
TWO_STAGE_CONVENTION = (
    f'two-stage: RoI box heads on {NUM_PROPOSALS} proposals, mask heads '
    f'on {NUM_MASK_ROIS} RoIs (mmdet 2 forward_dummy)')


def family(cfg):
    """``'cls'``, ``'det'`` (one-stage), ``'two-stage'``, ``'panoptic'``,
    ``'seg'`` or ``'pose'``."""
    scope = cfg.get('default_scope', 'mmpretrain')
    if scope == 'mmdet':
        if 'panoptic_head' in cfg.model:
            return 'panoptic'
        return 'two-stage' if 'roi_head' in cfg.model else 'det'
    families = {'mmpretrain': 'cls', 'mmseg': 'seg', 'mmpose': 'pose'}
    if scope not in families:
        raise UserError(
            f'Unsupported default_scope {scope!r}; expected one of '
            f'mmpretrain, mmdet, mmseg, mmpose.')
    return families[scope]


def default_shape(cfg, kind):
    if kind == 'pose':
        w, h = cfg.codec.input_size
        return (h, w)
    if kind == 'panoptic':
        return tuple(cfg.get('image_size', (1024, 1024)))
    return {
        'cls': (224, 224),
        'seg': (512, 512),
        'det': (800, 1280),
        'two-stage': (800, 1280)
    }[kind]


def _modules(m):
    return list(m) if isinstance(m, nn.ModuleList) else [m]


def _roi_shape(extractor):
    """(channels, size, size) of what a RoI extractor gives its heads."""
    extractor = _modules(extractor)[0]
    size = extractor.roi_layers[0].output_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    return (extractor.out_channels, ) + size


def two_stage_dummy_forward(det, img):
    """mmdet 2's ``forward_dummy``: backbone, neck and RPN head on the image;
    each RoI box head on :data:`NUM_PROPOSALS` proposals and each mask head
    on :data:`NUM_MASK_ROIS` RoIs (their RoI features as zeros)."""
    x = det.extract_feat(img)
    outs = [det.rpn_head(x)]
    roi = det.roi_head
    shared = roi.shared_head if getattr(roi, 'with_shared_head',
                                        False) else None

    def run_heads(heads, extractor, num):
        if heads is None:
            return
        feats = img.new_zeros(num, *_roi_shape(extractor))
        if shared is not None:
            feats = shared(feats)
        for head in _modules(heads):
            outs.append(head(feats))

    run_heads(roi.bbox_head, roi.bbox_roi_extractor, NUM_PROPOSALS)
    if getattr(roi, 'with_mask', False):
        extractor = roi.mask_roi_extractor
        if getattr(roi, 'share_roi_extractor', False) or extractor is None:
            extractor = roi.bbox_roi_extractor
        run_heads(roi.mask_head, extractor, NUM_MASK_ROIS)
    return outs


def model_forward(model, kind):
    """The tensor-in forward that is counted for ``kind``."""
    if kind == 'two-stage':
        return lambda x: two_stage_dummy_forward(model, x)
    if kind == 'cls':
        return lambda x: model(x, mode='tensor')
    # Detectors, segmentors, Mask2Former and pose models: backbone, neck and
    # heads without post-processing.
    return lambda x: model._forward(x, None)


def count(fn, x):
    """Multiply-adds of ``fn(x)`` (torch's FLOP counter, halved), with
    VAN's dilated convolutions counted as defined (not as the padded phase
    grids they run on on CPU)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad(), \
            plain_dilated_convolutions():
        fn(x)
    return counter.get_total_flops() / 2


def build(cfg, device):
    scope = cfg.get('default_scope', 'mmpretrain')
    with DefaultScope.overwrite_default_scope(scope), torch.device(device):
        model = MODELS.build(cfg.model)
    return model.eval()


def _needs_values(exc):
    """Whether ``exc`` says the meta device cannot run the model (a value
    read, an operator without a meta kernel)."""
    return 'meta' in str(exc).lower() or isinstance(exc, NotImplementedError)


def complexity(config, shape=None, device='meta'):
    """Return a dict with params and FLOPs (multiply-adds) of the model and
    its backbone, the input ``shape`` (H, W), the model ``family`` and the
    ``device`` it was counted on."""
    cfg = load_config(config)
    kind = family(cfg)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    sync_bn_to_bn(cfg.model)
    cfg.model.backbone.pop('init_cfg', None)
    if kind == 'seg':
        cfg.model.pretrained = None
    if shape is None:
        shape = default_shape(cfg, kind)
    if len(shape) == 1:
        shape = (shape[0], shape[0])
    shape = tuple(shape)
    model = build(cfg, device)
    x = torch.zeros(1, 3, *shape, device=device)
    info = dict(
        shape=shape,
        family=kind,
        device=str(device),
        params=sum(p.numel() for p in model.parameters()),
        backbone_params=sum(p.numel() for p in model.backbone.parameters()),
        backbone_flops=count(model.backbone, x))
    try:
        info['flops'] = count(model_forward(model, kind), x)
    except (RuntimeError, NotImplementedError) as e:
        if device != 'meta' or not _needs_values(e):
            raise
        # The forward reads tensor values (e.g. an assert on a tensor):
        # the meta device has none; count on the CPU.
        info['device'] = 'cpu'
        model = build(cfg, 'cpu')
        info['flops'] = count(
            model_forward(model, kind), torch.zeros(1, 3, *shape))
    return info


def report(config, info):
    """The lines tools/analysis_tools/get_flops.py prints for
    :func:`complexity`'s ``info``."""
    h, w = info['shape']
    notes = [CONVENTION, f'counted on {info["device"]}']
    if info['family'] == 'two-stage':
        notes.append(TWO_STAGE_CONVENTION)
    return '\n'.join([
        f'{config} at {h}x{w} (HxW)',
        f'  model:    {info["params"] / 1e6:8.2f} M params  '
        f'{info["flops"] / 1e9:8.2f} GFLOPs',
        f'  backbone: {info["backbone_params"] / 1e6:8.2f} M params  '
        f'{info["backbone_flops"] / 1e9:8.2f} GFLOPs',
        f'  ({"; ".join(notes)})'
    ])
