# Copyright (c) mmvan contributors. All rights reserved.
"""mmvan's checkpoint module: read, check, convert on load, load, save.

A reference is a local path, an ``http(s)://`` URL or a zoo name
``mmvan://<name>`` (:func:`resolve`: downloaded once, checked against the
zoo's sha256). The file may be in any format that :mod:`mmvan.converters`
knows (official VAN / LSKA, official segmentation, the LSKA repository's,
mmpretrain / mmcls, HF transformers ``.bin`` or ``.safetensors``, mmvan); it
is read with torch's safe loader (:func:`read_checkpoint`), converted in
memory (:func:`load_source_weights`) and every tensor is checked against the
model it is loaded into (:func:`load_weights`):

- a missing key, an unexpected key of the model's part or a shape mismatch
  is a :class:`WeightsMismatchError` naming the first keys and the
  architecture the checkpoint holds, unless ``strict=False`` (then what fits
  is loaded and the counts are logged as a warning);
- a classification head with another number of classes (fine-tuning 1k ->
  another data set) is the one expected difference: it is left at its
  initialisation and reported in one line.

Written checkpoints go through :func:`save_checkpoint` (a temporary file,
renamed when complete).

Two extension points of mmengine use it, both switched on explicitly:

- :class:`PretrainedVAN`, a registered weight initializer:
  ``init_cfg=dict(type='mmvan.PretrainedVAN', checkpoint=REF)``, which a VAN
  backbone makes of its ``dict(type='Pretrained', ...)``;
- :func:`register_schemes`: mmengine's ``CheckpointLoader`` resolves
  ``mmvan://`` names and downloads ``http(s)://`` files with the same cache,
  so ``load_from`` and ``init_cfg`` of any OpenMMLab model use them.
"""
import argparse
import logging
import os
import os.path as osp
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.runner.checkpoint import CheckpointLoader

from mmvan.converters import (DENSE_HEADS, FORMATS_BY_NAME, ConversionError,
                              StateDict, detect_format, extract_state_dict,
                              infer_arch, rename_keys, strip_prefix)
from mmvan.models.backbones.van import VAN
from mmvan.registry import WEIGHT_INITIALIZERS
from mmvan.utils.atomic import atomic_write
from mmvan.utils.checkpoint import key_mismatches, safe_torch_load
from mmvan.utils.errors import CheckpointError
from .download import (cached_path, check_sha256, download, is_cached_file,
                       local_rank_zero_first)
from .index import ModelInfo, find_by_url, find_model

ZOO_PREFIX = 'mmvan://'
MIRROR_ENV = 'MMVAN_ZOO_MIRROR'
# The classifier's head: its class count may differ from the checkpoint's.
HEAD_KEYS = re.compile(r'(^|\.)head\.fc\.(weight|bias)$')
Logger = Union[str, logging.Logger]


class WeightsMismatchError(CheckpointError):
    """A checkpoint's tensors do not fit the model they are loaded into."""


class ManualDownloadError(CheckpointError):
    """A zoo file that only a person can download (a share page) is not in
    the cache or the mirror."""


def is_url(ref: object) -> bool:
    """Whether ``ref`` is an ``http(s)://`` URL."""
    return isinstance(ref, str) and ref.startswith(('http://', 'https://'))


def _mirror_location(info):
    """Where ``MMVAN_ZOO_MIRROR`` keeps the file of ``info`` (a local path
    or a URL), or None without a mirror."""
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror:
        return None
    if mirror.startswith('file://'):
        mirror = mirror[len('file://'):]
    if is_url(mirror):
        return mirror.rstrip('/') + '/' + info.file_name
    return osp.join(osp.expanduser(mirror), info.file_name)


def resolve(ref: Union[str, os.PathLike],
            progress: bool = True) -> Tuple[str, Optional[ModelInfo]]:
    """A local file for ``ref``, downloading it if needed.

    A zoo file is checked against its sha256 wherever it comes from (the
    cache, a mirror, a download); see :mod:`mmvan.zoo.download`. In a
    distributed run rank 0 of each node fetches first, the others then read
    the cache.

    Returns:
        tuple: ``(path, info)``; ``info`` is the zoo entry
        (:class:`~mmvan.zoo.index.ModelInfo`) or None.
    """
    ref = str(ref)
    if ref.startswith(ZOO_PREFIX) or is_url(ref):
        return local_rank_zero_first(lambda: _resolve_remote(ref, progress))
    path = osp.expanduser(ref)
    if osp.isdir(path):
        raise CheckpointError(
            f'Checkpoint {ref} is a folder, not a checkpoint file; give the '
            f'file in it.')
    if not osp.isfile(path):
        raise CheckpointError(
            f'Checkpoint {ref} does not exist. Give a file, an http(s):// '
            f'URL or a zoo name such as mmvan://van-b0_3rdparty_in1k '
            f'(mmvan.apis.list_models() lists them).')
    return path, None


def _resolve_remote(ref, progress):
    if is_url(ref):
        info = find_by_url(ref)
        sha = info.sha256 if info else None
        return download(
            ref,
            sha256=sha,
            file_name=info.file if info else None,
            progress=progress), info
    info = find_model(ref[len(ZOO_PREFIX):])
    mirrored = _mirror_location(info)
    if mirrored is not None and not is_url(mirrored):
        if not osp.isfile(mirrored):
            raise CheckpointError(
                f'{ref}: the mirror {os.environ[MIRROR_ENV]} ({MIRROR_ENV}) '
                f'has no {info.file_name}. Copy it there from '
                f'{info.weights}.')
        check_sha256(
            mirrored, info.sha256,
            f'Replace it with the file from {info.weights} (or unset '
            f'{MIRROR_ENV} to download it).')
        return mirrored, info
    if not info.weights:
        raise CheckpointError(f'{ref}: the zoo lists no weights for it.')
    cached = cached_path(info.weights, info.file)
    if osp.isfile(cached):
        if info.download != 'direct' and mirrored is None:
            advice = (f'Delete it and download {info.file_name} again by '
                      f'hand from {info.weights}.')
        else:
            advice = 'Delete it; it is downloaded again on the next run.'
        return check_sha256(cached, info.sha256, advice), info
    if mirrored is None and info.download != 'direct':
        raise ManualDownloadError(
            f'{ref}: the release is a share page ({info.weights}) that '
            f'cannot be downloaded by a program. Download '
            f'{info.file_name} there by hand and save it as {cached}, '
            f'or put it in a folder named by {MIRROR_ENV}.')
    if mirrored is not None:
        # A mirrored file is cached under the canonical URL's key, so a
        # later run without the mirror finds it.
        path = download(
            mirrored,
            sha256=info.sha256,
            file_name=info.file,
            progress=progress)
        if not osp.isfile(cached):
            try:
                os.makedirs(osp.dirname(cached), exist_ok=True)
                os.link(path, cached)
            except OSError:
                pass
        return path, info
    return download(
        info.weights,
        sha256=info.sha256,
        file_name=info.file,
        progress=progress), info


def read_checkpoint(path: Union[str, os.PathLike]) -> object:
    """The object stored in ``path``: a ``.safetensors`` file as a dict of
    tensors, anything else through torch's safe loader.

    timm-style training checkpoints also store their ``argparse`` options;
    ``argparse.Namespace`` only holds attributes, so it is allowed here.
    """
    if str(path).endswith('.safetensors'):
        try:
            from safetensors.torch import load_file  # optional: HF files
        except ImportError:
            raise CheckpointError(
                f'{path} is a safetensors file; install safetensors '
                f'(pip install safetensors) to read it.') from None
        try:
            return load_file(str(path), device='cpu')
        except Exception as e:  # noqa: B902 - safetensors raises its own
            raise CheckpointError(
                f'Checkpoint {path} is truncated or not a safetensors file '
                f'({e}). Download or copy it again.') from None
    return safe_torch_load(
        path, map_location='cpu', extra_globals=[argparse.Namespace])


@dataclass
class SourceWeights:
    """A checkpoint's tensors in mmvan's scheme (``backbone.*`` with the
    official names, ``head.fc.*``; other parts such as ``neck.*`` or
    ``decode_head.*`` as they were)."""
    state_dict: StateDict
    source_format: Optional[str] = None
    meta: dict = field(default_factory=dict)
    ref: str = ''
    # The whole loaded object (optimizer state, message hub, ... of a
    # training checkpoint), for resuming.
    raw: object = field(default=None, repr=False)

    def describe_arch(self) -> str:
        """``'VAN-b1 (lka, k21)'`` from the backbone tensors, or ''."""
        try:
            info = infer_arch(self.state_dict)
        except Exception:  # noqa: B902 - not a VAN checkpoint
            return ''
        arch = info['arch']
        if not isinstance(arch, str):
            arch = f'custom {arch}'
        return f'VAN-{arch} ({info["attention"]}, k{info["kernel_size"]})'

    def as_checkpoint(self) -> dict:
        """The loaded checkpoint with the converted weights and meta: what
        mmengine's ``after_load_checkpoint`` hooks and ``resume`` read (a
        training checkpoint keeps its optimizer, message hub and scheduler
        states)."""
        checkpoint = dict(self.raw) if isinstance(self.raw, dict) else {}
        checkpoint.update(state_dict=self.state_dict, meta=self.meta)
        return checkpoint


def _strip_module(sd):
    return OrderedDict(
        (k[len('module.'):] if k.startswith('module.') else k, v)
        for k, v in sd.items())


def to_mmvan(state_dict: StateDict,
             meta: Optional[dict] = None) -> Tuple[StateDict, Optional[str]]:
    """Convert a state dict of a known VAN format into mmvan's scheme.

    Returns:
        tuple: ``(state_dict, format name)``; the dict is returned as it is
        with format None when no VAN format is recognised.
    """
    try:
        fmt = detect_format(state_dict.keys(), meta)
    except ConversionError:
        return OrderedDict(state_dict), None
    spec = FORMATS_BY_NAME[fmt]
    renamed, dropped = rename_keys(state_dict, spec, task='cls')
    for key in dropped:
        # Necks and dense heads are not the backbone's: keep them for
        # whole-model loads (detectors, segmentors).
        short = strip_prefix(key, spec.prefixes)
        if re.search(DENSE_HEADS, short) and short not in renamed:
            renamed[short] = state_dict[key]
    return renamed, fmt


def load_source_weights(ref: Union[str, os.PathLike],
                        progress: bool = True) -> SourceWeights:
    """Resolve, read and convert ``ref``; see :class:`SourceWeights`."""
    path, info = resolve(ref, progress=progress)
    try:
        checkpoint = read_checkpoint(path)
    except CheckpointError as e:
        if not is_cached_file(path):
            raise
        raise CheckpointError(
            f'{e} It is a cached download: delete {path}; it is '
            f'downloaded again on the next run.') from None
    try:
        sd = extract_state_dict(checkpoint)
    except ConversionError as e:
        raise CheckpointError(f'{ref}: {e}') from None
    meta = checkpoint.get('meta', {}) if isinstance(checkpoint, dict) else {}
    if not isinstance(meta, dict):
        meta = {}
    sd, fmt = to_mmvan(_strip_module(sd), meta)
    return SourceWeights(sd, fmt, meta, str(ref), raw=checkpoint)


def _fit(source, target_shapes, prefix):
    """Map the source tensors onto the target's keys.

    ``prefix`` is where the VAN backbone sits in the target: ``''`` for a
    bare backbone, ``'backbone.'`` for a classifier, detector or segmentor.
    Returns ``(tensors, ignored)``; ``ignored`` counts source tensors that
    belong to parts a bare backbone does not have (a head, a neck).
    """
    tensors, ignored = OrderedDict(), []
    for key, value in source.state_dict.items():
        if source.source_format is None:
            tensors[key] = value
        elif key.startswith('backbone.'):
            tensors[prefix + key[len('backbone.'):]] = value
        elif prefix == '':
            ignored.append(key)
        else:
            tensors[key] = value
    return tensors, ignored


def _first(keys, n=3):
    shown = ', '.join(str(k) for k in keys[:n])
    return shown + (', ...' if len(keys) > n else '')


def _folding_hint(tensors, shapes):
    """A hint when one side is folded (``deploy=True``) and the other not."""

    def folded(keys):
        return any(k.endswith('.shortcut_scale') for k in keys)

    if folded(tensors) and not folded(shapes):
        return (' The checkpoint is a folded inference one: build the model '
                'with deploy=True (--cfg-options model.backbone.deploy=True).')
    if folded(shapes) and not folded(tensors):
        return (' The model is built folded (deploy=True) and the checkpoint '
                'is not: drop deploy=True, or fold the checkpoint with '
                'tools/model_converters/fold_van.py.')
    return ''


def check_and_load(module: nn.Module,
                   source: 'SourceWeights',
                   prefix: str = '',
                   strict: bool = True,
                   what: Optional[str] = None,
                   logger: Union[str, logging.Logger] = 'current') -> dict:
    """Load ``source`` (:class:`SourceWeights`) into ``module``.

    Returns:
        dict: ``loaded``, ``total`` (tensors of the module), ``missing``,
        ``unexpected``, ``mismatched`` key lists and ``head`` (a note when a
        head of another class count was left out).

    Raises:
        WeightsMismatchError: with ``strict`` when anything does not fit.
    """
    target = module.state_dict()
    shapes = OrderedDict((k, tuple(v.shape)) for k, v in target.items())
    tensors, ignored = _fit(source, shapes, prefix)
    head_note = ''
    for key in [k for k in tensors if HEAD_KEYS.search(k)]:
        if key in shapes and tuple(tensors[key].shape) != shapes[key] and \
                tensors[key].shape[1:] == target[key].shape[1:]:
            head_note = (f'head: the checkpoint has {tensors[key].shape[0]} '
                         f'classes, the model {shapes[key][0]}; the head '
                         f'keeps its initialisation.')
            del tensors[key]
            shapes.pop(key)
    missing, unexpected, wrong = key_mismatches(tensors, shapes)
    what = what or type(module).__name__
    fmt = source.source_format or 'unrecognised'
    report = dict(
        loaded=0,
        total=len(target),
        missing=missing,
        unexpected=unexpected,
        mismatched=wrong,
        head=head_note,
        ignored=ignored,
        format=fmt)
    problems = []
    if wrong:
        problems.append(f'{len(wrong)} shapes differ ({_first(wrong)})')
    if missing:
        problems.append(f'{len(missing)} of the model\'s {len(target)} '
                        f'tensors are not in the checkpoint '
                        f'({_first(missing)})')
    if unexpected:
        problems.append(f'{len(unexpected)} checkpoint tensors are not in '
                        f'the model ({_first(unexpected)})')
    if problems and strict:
        held = source.describe_arch()
        hint = f' The checkpoint holds {held};' if held else ''
        model_arch = getattr(module, 'arch_settings', None)
        if model_arch is None and hasattr(module, 'backbone'):
            model_arch = getattr(module.backbone, 'arch_settings', None)
        if model_arch is not None:
            hint += f' the model has embed_dims {model_arch["embed_dims"]}, '
            hint += f'depths {model_arch["depths"]}.'
        hint += _folding_hint(tensors, shapes)
        raise WeightsMismatchError(
            f'{source.ref} ({fmt} format) does not fit {what}: '
            f'{"; ".join(problems)}.{hint} Is it for another architecture '
            f'or task? To load only what fits, set strict=False (e.g. '
            f'init_cfg=dict(type=\'Pretrained\', checkpoint=..., '
            f'strict=False)).')
    fitting = OrderedDict((k, v) for k, v in tensors.items()
                          if k in shapes and tuple(v.shape) == shapes[k])
    module.load_state_dict(fitting, strict=False)
    report['loaded'] = len(fitting)
    if problems:
        print_log(
            f'Loaded {len(fitting)} of {len(target)} tensors of {what} from '
            f'{source.ref} ({fmt} format), strict=False: '
            f'{"; ".join(problems)}.',
            logger=logger,
            level=30)
    else:
        print_log(
            f'Loaded {len(fitting)} of {len(target)} tensors of {what} from '
            f'{source.ref} ({fmt} format).',
            logger=logger)
    if head_note:
        print_log(head_note, logger=logger)
    report['out_norm_eps'] = match_out_norm_eps(module, source, logger)
    return report


def trained_out_norm_eps(source: 'SourceWeights') -> Optional[float]:
    """The LayerNorm eps the stage norms of ``source`` were trained with:
    from a converted checkpoint's meta, else from its format's table
    entry; None when unknown (an mmvan training checkpoint)."""
    meta = source.meta if isinstance(source.meta, dict) else {}
    arch = meta.get('arch')
    if isinstance(arch, dict) and arch.get('out_norm_eps'):
        return float(arch['out_norm_eps'])
    if source.source_format == 'official-seg' and 'mmengine_version' in meta:
        # mmvan's own detector, segmentor and pose checkpoints have the keys
        # of the official segmentation release, which mmseg 0.x saved
        # without mmengine: an mmengine Runner's file is mmvan's, trained
        # with whatever eps its config had.
        return None
    spec = FORMATS_BY_NAME.get(source.source_format)
    return spec.out_norm_eps if spec is not None else None


def match_out_norm_eps(module: nn.Module,
                       source: 'SourceWeights',
                       logger: Union[str, logging.Logger] = 'current'
                       ) -> Optional[float]:
    """Give the VAN stage norms of ``module`` the eps ``source`` was trained
    with where the config left ``out_norm_cfg`` at its default; where the
    config chose another eps, say so in one line.

    Returns:
        float | None: the eps adopted, or None.
    """
    eps = trained_out_norm_eps(source)
    if eps is None:
        return None
    adopted = None
    for name, van in unwrap(module).named_modules():
        if not isinstance(van, VAN):
            continue
        norms = [van.stage_modules(i)[2] for i in range(van.num_stages)]
        if not isinstance(norms[0], torch.nn.LayerNorm):
            continue
        current = norms[0].eps
        if current == eps:
            continue
        key = ('model.' + name if name else 'model.backbone') + \
            '.out_norm_cfg'
        fmt = source.source_format
        if getattr(van, 'out_norm_cfg_given', True):
            print_log(
                f'{source.ref} ({fmt} format) was trained with LayerNorm eps '
                f'{eps:g} in the stage norms; the model uses {current:g}, so '
                f'its features differ from the original model\'s. Set '
                f'{key}=dict(type=\'LN\', eps={eps:g}) to match.',
                logger=logger,
                level=30)
            continue
        for norm in norms:
            norm.eps = eps
        adopted = eps
        print_log(
            f'Stage norms use LayerNorm eps {eps:g}, as {source.ref} ({fmt} '
            f'format) was trained (set {key} to choose another).',
            logger=logger)
    return adopted


def load_pretrained(backbone: nn.Module,
                    init_cfg: dict,
                    logger: Union[str, logging.Logger] = 'current') -> dict:
    """Apply ``init_cfg=dict(type='Pretrained', checkpoint=...)`` to a VAN
    backbone: any reference, any known format, checked key by key.

    ``prefix`` is honoured for checkpoints of no known VAN format (as
    mmengine does); known formats are mapped by the converter, which knows
    where their backbone is. ``strict`` (default True) refuses partial
    loads.
    """
    ref = init_cfg.get('checkpoint')
    if not ref:
        raise CheckpointError(
            "init_cfg type='Pretrained' needs a checkpoint (a path, an URL "
            'or mmvan://<name>).')
    source = load_source_weights(ref)
    if source.source_format is None and init_cfg.get('prefix'):
        p = init_cfg['prefix']
        p = p if p.endswith('.') else p + '.'
        source.state_dict = OrderedDict((k[len(p):], v)
                                        for k, v in source.state_dict.items()
                                        if k.startswith(p))
    return check_and_load(
        backbone,
        source,
        prefix='',
        strict=init_cfg.get('strict', True),
        what='the VAN backbone',
        logger=logger)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DDP-style wrappers and test-time-augmentation
    wrappers, whose checkpoints hold the inner model's keys."""
    while True:
        if is_model_wrapper(model) or isinstance(model, BaseTTAModel):
            model = model.module
        else:
            return model


def van_prefix(model: nn.Module) -> str:
    """Where the VAN backbone sits in ``model``'s state dict."""
    if isinstance(model, VAN):
        return ''
    for name, sub in model.named_modules():
        if isinstance(sub, VAN):
            return name + '.'
    return 'backbone.'


def load_weights(model: nn.Module,
                 ref: Union[str, os.PathLike, SourceWeights],
                 strict: bool = True,
                 what: str = 'the model',
                 logger: Logger = 'current') -> dict:
    """Load a whole-model checkpoint (``load_from``, ``tools/test.py``,
    :func:`mmvan.apis.init_model`): any reference and known format, or the
    :class:`SourceWeights` read from one.

    Returns:
        dict: the report of :func:`check_and_load` with the checkpoint's
        ``meta`` added.
    """
    source = ref if isinstance(ref, SourceWeights) else \
        load_source_weights(ref)
    model = unwrap(model)
    report = check_and_load(
        model,
        source,
        prefix=van_prefix(model),
        strict=strict,
        what=what,
        logger=logger)
    report['meta'] = source.meta
    return report


def save_checkpoint(obj: object,
                    dst: Union[str, os.PathLike],
                    src: Optional[Union[str, os.PathLike]] = None) -> str:
    """``torch.save`` into a temporary file beside ``dst``, then rename.

    Never overwrites ``src``; leaves nothing behind on failure (a
    :class:`~mmvan.utils.atomic.SaveError` names the reason).
    """
    dst = osp.abspath(dst)
    if src is not None and osp.exists(dst) and osp.samefile(dst, src):
        raise ConversionError(
            f'Refusing to overwrite the source checkpoint {src}.')
    return atomic_write(dst, writer=lambda f: torch.save(obj, f))


@WEIGHT_INITIALIZERS.register_module()
class PretrainedVAN:
    """Weight initializer: a strict, converting load of ``checkpoint`` (a
    path, an URL or ``mmvan://<name>``, any known format) into the module
    it initialises, as :func:`load_pretrained`.

    A VAN backbone whose ``init_cfg`` is ``dict(type='Pretrained', ...)``
    initialises itself with this; configs may name it directly as
    ``dict(type='mmvan.PretrainedVAN', checkpoint=..., strict=True)``.

    Args:
        checkpoint (str): The checkpoint reference.
        prefix (str, optional): Of a checkpoint of no known VAN format,
            only the keys under ``prefix`` (as mmengine's ``Pretrained``).
        strict (bool): Refuse partial loads. Defaults to True.
        map_location (str): Accepted for mmengine's ``Pretrained``
            arguments; tensors are read on the CPU.
    """

    def __init__(self,
                 checkpoint: Optional[str] = None,
                 prefix: Optional[str] = None,
                 strict: bool = True,
                 map_location: str = 'cpu'):
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.strict = strict
        self.map_location = map_location

    def __call__(self, module: nn.Module) -> None:
        init_cfg = dict(
            type='Pretrained',
            checkpoint=self.checkpoint,
            prefix=self.prefix,
            strict=self.strict)
        load_pretrained(module, init_cfg)

    def _get_init_info(self) -> str:
        return f'{self.__class__.__name__}: load from {self.checkpoint}'


def _scheme_zoo(filename, map_location=None):
    """mmengine ``CheckpointLoader`` scheme for ``mmvan://``: the zoo file,
    converted into mmvan's scheme."""
    source = load_source_weights(filename)
    return dict(state_dict=source.state_dict, meta=source.meta)


def _scheme_http(filename, map_location=None):
    """mmengine ``CheckpointLoader`` scheme for ``http(s)://``: downloaded
    once per node with a temporary file and a completeness check, loaded
    safely."""
    path, _ = resolve(filename)
    return read_checkpoint(path)


def register_schemes() -> None:
    """Make mmengine's ``CheckpointLoader`` (``load_from``, ``init_cfg`` of
    any OpenMMLab model) resolve ``mmvan://`` names and download
    ``http(s)://`` files through :func:`resolve`. Uses mmengine's public
    ``CheckpointLoader.register_scheme``."""
    CheckpointLoader.register_scheme(
        prefixes=ZOO_PREFIX, loader=_scheme_zoo, force=True)
    CheckpointLoader.register_scheme(
        prefixes=('http://', 'https://'), loader=_scheme_http, force=True)
