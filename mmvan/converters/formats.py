# Copyright (c) mmvan contributors. All rights reserved.
"""Checkpoint formats of the VAN family, as data.

Each format turns its keys into mmvan's scheme: the official VAN names
(``patch_embed1.proj``, ``block1.0.attn.spatial_gating_unit.conv0``,
``mlp.dwconv.dwconv``, ``norm1``) for the backbone and ``head.fc`` for the
classifier. :func:`mmvan.converters.rename_keys` strips ``prefixes``,
drops keys matching ``drop``, applies ``rules`` in order (``re.sub``; a
replacement may be a function of the match) and adds ``backbone.`` to
backbone keys. Adding a format is adding an entry here.
"""
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

Replacement = Union[str, Callable[[re.Match], str]]

# Parts of detectors, segmentors and pose models that are not the backbone:
# the neck and every ``*_head`` (decode, auxiliary, rpn, roi, bbox, mask,
# panoptic, panoptic_fusion, ...).
DENSE_HEADS = r'^(neck|\w+_head|data_preprocessor)\.'


@dataclass(frozen=True)
class CheckpointFormat:
    """One checkpoint format.

    Attributes:
        name: Short name used by ``--format``.
        description: Where such checkpoints come from.
        detect: Regexes; the format applies when each matches some key.
        prefixes: Leading prefixes removed from every key that has one.
        rules: ``(pattern, replacement)`` pairs applied in order to each key.
        drop: Regexes (matched after prefix stripping) of keys to drop.
        out_norm_eps: LayerNorm eps of the stage norms this release was
            trained with (the loader gives it to a model built with the
            default); None where it depends on the training config.
    """
    name: str
    description: str
    detect: Tuple[str, ...]
    prefixes: Tuple[str, ...] = ()
    rules: List[Tuple[str, Replacement]] = field(default_factory=list)
    drop: Tuple[str, ...] = ()
    out_norm_eps: Optional[float] = 1e-6


def _stage(template):
    """Replacement that shifts a 0-based stage index (group 1) to 1-based."""

    def repl(match):
        return template.format(int(match.group(1)) + 1, *match.groups()[1:])

    return repl


# mmpretrain / mmcls VAN and the LSKA repo's mmdet/mmseg backbones share
# these names.
_MM_RULES = [
    (r'^patch_embed(\d)\.projection\.', r'patch_embed\1.proj.'),
    (r'^blocks(\d)\.', r'block\1.'),
    (r'\.spatial_gating_unit\.DW_conv\.', '.spatial_gating_unit.conv0.'),
    (r'\.spatial_gating_unit\.DW_D_conv\.',
     '.spatial_gating_unit.conv_spatial.'),
    (r'\.spatial_gating_unit\.DW_conv_([hv])\.',
     r'.spatial_gating_unit.conv0\1.'),
    (r'\.spatial_gating_unit\.DW_D_conv_([hv])\.',
     r'.spatial_gating_unit.conv_spatial_\1.'),
    (r'\.mlp\.dwconv\.(weight|bias)$', r'.mlp.dwconv.dwconv.\1'),
]

# mmvan's backbone names -> mmpretrain's, the inverse of _MM_RULES (to
# build mmpretrain's VAN from mmvan's weights for a comparison).
_TO_MM_RULES = [
    (r'^patch_embed(\d)\.proj\.', r'patch_embed\1.projection.'),
    (r'^block(\d)\.', r'blocks\1.'),
    (r'\.spatial_gating_unit\.conv0\.', '.spatial_gating_unit.DW_conv.'),
    (r'\.spatial_gating_unit\.conv_spatial\.',
     '.spatial_gating_unit.DW_D_conv.'),
    (r'\.spatial_gating_unit\.conv0([hv])\.',
     r'.spatial_gating_unit.DW_conv_\1.'),
    (r'\.spatial_gating_unit\.conv_spatial_([hv])\.',
     r'.spatial_gating_unit.DW_D_conv_\1.'),
    (r'\.mlp\.dwconv\.dwconv\.', '.mlp.dwconv.'),
]


def to_mmpretrain_names(state_dict: Dict[str, Any]) -> Dict[str, Any]:
    """A backbone state dict in mmvan's (official) names renamed to
    mmpretrain's VAN (or the LSKA repository's) names."""
    out = {}
    for key, value in state_dict.items():
        for pattern, repl in _TO_MM_RULES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


FORMATS = [
    CheckpointFormat(
        name='mmvan',
        description='mmvan classifier or backbone checkpoint',
        detect=(r'^backbone\.block\d+\.\d+\.attn\.spatial_gating_unit\.',
                r'^head\.fc\.'),
        prefixes=('backbone.', ),
        drop=(DENSE_HEADS, ),
        # Whatever the training config had; converted files record it in
        # meta['arch']['out_norm_eps'].
        out_norm_eps=None),
    CheckpointFormat(
        name='official',
        description='official VAN or LSKA classification release '
        '(timm-style, official key names, head.*)',
        detect=(r'^block\d+\.\d+\.attn\.spatial_gating_unit\.conv', ),
        prefixes=('module.', ),
        rules=[(r'^head\.', 'head.fc.')]),
    CheckpointFormat(
        name='official-seg',
        description='official VAN segmentation release (mmseg 0.x, '
        'backbone.* with official names)',
        detect=(
            r'^backbone\.block\d+\.\d+\.attn\.spatial_gating_unit\.conv', ),
        prefixes=('backbone.', ),
        drop=(DENSE_HEADS, ),
        out_norm_eps=1e-5),
    CheckpointFormat(
        name='lska-mm',
        description='LSKA repository mmdet/mmseg backbone (blocks{i}, '
        'projection, DW_conv_h/v, DW_D_conv_h/v)',
        detect=(r'^(backbone\.)?blocks\d+\.\d+\.attn\.spatial_gating_unit\.'
                r'DW_conv_h\.', ),
        prefixes=('backbone.', ),
        rules=_MM_RULES,
        drop=(DENSE_HEADS, ),
        out_norm_eps=1e-5),
    CheckpointFormat(
        name='mmpretrain',
        description='mmpretrain / mmcls VAN (blocks{i}, projection, '
        'DW_conv, DW_D_conv, head.fc)',
        detect=(r'^(backbone\.)?blocks\d+\.\d+\.attn\.spatial_gating_unit\.'
                r'DW_conv\.', ),
        prefixes=('backbone.', ),
        rules=_MM_RULES,
        drop=(DENSE_HEADS, ),
        out_norm_eps=1e-5),
    CheckpointFormat(
        name='hf',
        description='HF transformers VanModel / VanForImageClassification',
        detect=(r'^(van\.)?encoder\.stages\.\d+\.', ),
        prefixes=('van.', ),
        rules=[
            (r'^encoder\.stages\.(\d)\.embeddings\.convolution\.',
             _stage('patch_embed{}.proj.')),
            (r'^encoder\.stages\.(\d)\.embeddings\.normalization\.',
             _stage('patch_embed{}.norm.')),
            (r'^encoder\.stages\.(\d)\.normalization\.', _stage('norm{}.')),
            (r'^encoder\.stages\.(\d)\.layers\.(\d+)\.',
             _stage('block{}.{}.')),
            (r'\.pre_normomalization\.', '.norm1.'),
            (r'\.post_normalization\.', '.norm2.'),
            (r'\.attention\.pre_projection\.conv\.', '.attn.proj_1.'),
            (r'\.attention\.post_projection\.', '.attn.proj_2.'),
            (r'\.attention\.attention_layer\.attention\.depth_wise\.',
             '.attn.spatial_gating_unit.conv0.'),
            (r'\.attention\.attention_layer\.attention\.depth_wise_dilated\.',
             '.attn.spatial_gating_unit.conv_spatial.'),
            (r'\.attention\.attention_layer\.attention\.point_wise\.',
             '.attn.spatial_gating_unit.conv1.'),
            (r'\.attention_scaling\.weight$', '.layer_scale_1'),
            (r'\.mlp_scaling\.weight$', '.layer_scale_2'),
            (r'\.mlp\.in_dense\.', '.mlp.fc1.'),
            (r'\.mlp\.depth_wise\.', '.mlp.dwconv.dwconv.'),
            (r'\.mlp\.out_dense\.', '.mlp.fc2.'),
            (r'^classifier\.', 'head.fc.'),
        ],
        # VanModel builds a final LayerNorm that its forward never uses.
        drop=(r'^layernorm\.', )),
]

FORMATS_BY_NAME = {f.name: f for f in FORMATS}
