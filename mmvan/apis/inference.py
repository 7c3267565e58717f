# Copyright (c) mmvan contributors. All rights reserved.
"""One inference API for VAN classifiers, detectors and segmentors.

    >>> from mmvan.apis import init_model, inference_model
    >>> model = init_model('configs/van/van-b0_8xb128_in1k.py',
    ...                    'mmvan://van-b0_3rdparty_in1k')
    >>> sample = inference_model(model, 'demo/cat.jpg')
    >>> sample.pred_label, sample.pred_score.topk(5)

The task follows the config's default scope: mmpretrain configs return
mmpretrain ``DataSample`` objects (``pred_label``, ``pred_score``), mmdet
configs mmdet ``DetDataSample`` (``pred_instances``), mmseg configs mmseg
``SegDataSample`` (``pred_sem_seg``).
"""
import os.path as osp

import numpy as np
import torch

from mmvan.utils.cli import UserError, sync_bn_to_bn

TASKS = {'mmpretrain': 'cls', 'mmdet': 'det', 'mmseg': 'seg'}


def task_of(cfg):
    scope = cfg.get('default_scope', 'mmpretrain')
    if scope not in TASKS:
        raise UserError(f'Unsupported default_scope {scope!r}; expected one '
                        f'of {sorted(TASKS)}.')
    return TASKS[scope]


def load_image(img):
    """An image as an ``HxWx3`` uint8 BGR array (OpenMMLab's convention).

    Accepts a path or an array. Gray, gray+alpha, palette, 16-bit and RGBA
    images become 3-channel; alpha is dropped. Unreadable inputs raise
    :class:`~mmvan.utils.cli.UserError`.
    """
    from PIL import Image, UnidentifiedImageError
    if isinstance(img, np.ndarray):
        arr = img
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        elif arr.ndim == 3 and arr.shape[2] == 4:
            arr = arr[..., :3]
        elif arr.ndim == 3 and arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise UserError(f'Expected an HxW or HxWxC image array, got '
                            f'shape {img.shape}.')
        if arr.dtype != np.uint8:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(arr)
    path = str(img)
    if not osp.isfile(path):
        raise UserError(f'Image {path} does not exist.')
    try:
        with Image.open(path) as pil:
            pil.load()
            if pil.mode in ('I;16', 'I;16B', 'I'):
                arr = np.asarray(pil, dtype=np.float32)
                arr = arr / max(float(arr.max()), 1.0) * 255
                pil = Image.fromarray(arr.astype(np.uint8))
            rgb = pil.convert('RGB')
    except UnidentifiedImageError:
        raise UserError(f'{path} is not an image that can be read (PIL '
                        f'does not recognise its format).') from None
    except OSError as e:
        raise UserError(f'Cannot read image {path}: {e}.') from None
    return np.ascontiguousarray(np.asarray(rgb)[..., ::-1])


def load_weights(model, checkpoint, config=''):
    """Load ``checkpoint`` (a path, an URL or ``mmvan://<name>``, in any
    format mmvan converts) strictly into ``model``, or fail with a
    :class:`~mmvan.zoo.WeightsMismatchError` that names what does not fit
    (another architecture, another task).

    Returns:
        dict: the checkpoint's ``meta``.
    """
    from mmvan.zoo import load_weights as zoo_load_weights
    what = f'the model of config {config}' if config else 'the model'
    report = zoo_load_weights(model, checkpoint, strict=True, what=what)
    return report['meta']


def init_model(config,
               checkpoint=None,
               device='cpu',
               cfg_options=None,
               deploy=True):
    """Build a model from a config (path or ``Config``) and load weights.

    Args:
        deploy (bool): Fold the VAN backbones (BatchNorms and layer scales
            into the convolutions, channels-last; same outputs, faster).
            False keeps the model as trained (e.g. to read its attention or
            train it further).

    Returns:
        nn.Module: in eval mode, with ``cfg``, ``dataset_meta`` and
        ``task`` set.
    """
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope, init_default_scope

    from mmvan.utils.cli import load_config
    if isinstance(config, Config):
        cfg = config.copy()
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
    else:
        cfg = load_config(str(config), cfg_options)
    task = task_of(cfg)
    scope = cfg.get('default_scope', 'mmpretrain')
    init_default_scope(scope)
    if task == 'seg':
        cfg.model.pretrained = None
    if cfg.get('data_preprocessor') and 'data_preprocessor' not in cfg.model:
        # The Runner moves the top-level preprocessor into the model.
        cfg.model.data_preprocessor = cfg.data_preprocessor
    cfg.model.setdefault('backbone', {}).pop('init_cfg', None)
    sync_bn_to_bn(cfg.model)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
    meta = {}
    if checkpoint is not None:
        meta = load_weights(model, checkpoint, getattr(cfg, 'filename', ''))
    model.cfg = cfg
    model.dataset_meta = _dataset_meta(cfg, meta, task)
    model.task = task
    model.to(device)
    model.eval()
    if deploy:
        from .deploy import fuse_model
        fuse_model(model)
    return model


def _dataset_meta(cfg, meta, task):
    dataset_meta = meta.get('dataset_meta') if isinstance(meta, dict) else None
    if dataset_meta:
        return dict(dataset_meta)
    for loader in ('test_dataloader', 'val_dataloader'):
        ds = cfg.get(loader, {}).get('dataset', {})
        metainfo = dict(ds.get('metainfo') or {})
        classes = metainfo.get('classes') or ds.get('classes')
        if classes:
            metainfo['classes'] = tuple(classes)
            return metainfo
    if task == 'cls':
        num = cfg.model.get('head', {}).get('num_classes')
        if num == 1000:
            from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
            return dict(classes=IMAGENET_CATEGORIES)
    if task == 'det':
        from mmdet.datasets import CocoDataset
        return dict(CocoDataset.METAINFO)
    if task == 'seg':
        from mmseg.datasets import ADE20KDataset
        return dict(ADE20KDataset.METAINFO)
    return {}


def _cls_pipeline(cfg):
    from mmengine.dataset import Compose
    from mmengine.registry import DefaultScope
    steps = [
        t for t in cfg.test_dataloader.dataset.pipeline
        if t['type'] != 'LoadImageFromFile'
    ]
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return Compose(steps)


def inference_model(model, img):
    """Run ``model`` (from :func:`init_model`) on one image.

    Args:
        img (str | np.ndarray): A path or an HxW(x3/4) array (BGR).

    Returns:
        The task's data sample with its predictions.
    """
    task = getattr(model, 'task', None) or task_of(model.cfg)
    image = load_image(img)
    if task == 'det':
        from mmdet.apis import inference_detector
        return inference_detector(model, image)
    if task == 'seg':
        from mmseg.apis import inference_model as seg_inference
        return seg_inference(model, image)
    pipeline = _cls_pipeline(model.cfg)
    data = pipeline(
        dict(img=image, img_shape=image.shape[:2], ori_shape=image.shape[:2]))
    batch = dict(inputs=[data['inputs']], data_samples=[data['data_samples']])
    with torch.no_grad():
        return model.test_step(batch)[0]
