# Copyright (c) mmvan contributors. All rights reserved.
"""One inference API for VAN classifiers, detectors, segmentors and pose
models.

    >>> from mmvan.apis import init_model, inference_model
    >>> model = init_model('configs/van/van-b0_8xb128_in1k.py',
    ...                    'mmvan://van-b0_3rdparty_in1k')
    >>> sample = inference_model(model, 'demo/cat.jpg')
    >>> sample.pred_label, sample.pred_score.topk(5)

The task follows the config's default scope: mmpretrain configs return
mmpretrain ``DataSample`` objects (``pred_label``, ``pred_score``), mmdet
configs mmdet ``DetDataSample`` (``pred_instances``; panoptic models
``pred_panoptic_seg``), mmseg configs mmseg ``SegDataSample``
(``pred_sem_seg``), mmpose (top-down) configs one mmpose ``PoseDataSample``
whose ``pred_instances`` hold every person's ``keypoints`` (N, K, 2) and
``keypoint_scores`` (N, K).
"""
import threading
import weakref
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope, init_default_scope
from mmengine.structures import BaseDataElement

from mmvan.backends import BackendUnsupportedError, check_request, deploy_model
from mmvan.datasets.loading import load_image, test_pipeline_after_loader
from mmvan.utils.config import load_config, sync_bn_to_bn
from mmvan.utils.errors import UserError
from mmvan.zoo import load_weights
from .setup import register_all_modules

TASKS = {'mmpretrain': 'cls', 'mmdet': 'det', 'mmseg': 'seg', 'mmpose': 'pose'}


def task_of(cfg: Config) -> str:
    """The task of a config (``'cls'``, ``'det'``, ``'seg'`` or ``'pose'``)
    from its ``default_scope`` (mmpretrain when it names none)."""
    scope = cfg.get('default_scope', 'mmpretrain')
    if scope not in TASKS:
        raise UserError(f'Unsupported default_scope {scope!r}; expected one '
                        f'of {sorted(TASKS)}.')
    return TASKS[scope]


def init_model(config: Union[str, Config],
               checkpoint: Optional[str] = None,
               device: Union[str, torch.device] = 'cpu',
               cfg_options: Optional[dict] = None,
               deploy: bool = True,
               backend: str = 'auto',
               precision: str = 'fp32') -> nn.Module:
    """Build a model from a config (path or ``Config``) and load weights.

    The config's ``default_scope`` gives the task (:func:`task_of`):
    mmpretrain classifiers, mmdet detectors and panoptic models, mmseg
    segmentors and mmpose top-down pose models, each built in its own
    scope; ``checkpoint`` goes through the same strict, checked loader for
    all of them.

    Args:
        deploy (bool): Make it the inference model of ``backend`` (the VAN
            folded: BatchNorms and layer scales in the convolutions; same
            outputs, faster). False keeps the model as trained in PyTorch
            (e.g. to read its attention or train it further).
        backend (str): ``'auto'`` (default), ``'pytorch'``,
            ``'onnxruntime'`` or ``'openvino'``. A runtime runs the exported
            folded model (a classifier whole, a detector's or segmentor's
            backbone), cached next to the checkpoint and checked against
            the PyTorch model on real images when built (1e-4 relative in
            fp32, or it refuses). ``'auto'`` picks the fastest exact runtime
            installed for ``device`` (:func:`mmvan.backends.pick_backend`)
            when weights come from a checkpoint, and PyTorch otherwise.
            Pose models always run in PyTorch: ``'auto'`` resolves to
            ``'pytorch'`` for them and a runtime asked for by name is
            refused.
        precision (str): ``'fp32'`` (default); ``'bf16'`` (OpenVINO,
            PyTorch) or ``'int8'`` (ONNX Runtime) only when asked for; pose
            models: ``'fp32'`` only.

    Returns:
        nn.Module: in eval mode, with ``cfg``, ``dataset_meta``, ``task``,
        ``backend`` and ``precision`` set.

    Like the tools, it first calls :func:`mmvan.apis.register_all_modules`
    (``mmvan::`` configs, ``mmvan://`` weights), which :func:`get_model`
    goes through too.
    """
    register_all_modules()
    if deploy:
        check_request(backend, precision, device)
    if isinstance(config, Config):
        cfg = config.copy()
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
    else:
        cfg = load_config(str(config), cfg_options)
    task = task_of(cfg)
    if task == 'pose':
        backend = _pose_backend(backend, precision)
    scope = cfg.get('default_scope', 'mmpretrain')
    init_default_scope(scope)
    if task == 'seg':
        cfg.model.pretrained = None
    if task == 'pose':
        cfg.model.train_cfg = None  # as mmpose's init_model
    if cfg.get('data_preprocessor') and 'data_preprocessor' not in cfg.model:
        # The Runner moves the top-level preprocessor into the model.
        cfg.model.data_preprocessor = cfg.data_preprocessor
    cfg.model.setdefault('backbone', {}).pop('init_cfg', None)
    sync_bn_to_bn(cfg.model)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
    meta = {}
    if checkpoint is not None:
        config_file = getattr(cfg, 'filename', '')
        what = f'the model of config {config_file}' if config_file else \
            'the model'
        meta = load_weights(model, checkpoint, what=what)['meta']
    model.cfg = cfg
    model.dataset_meta = _dataset_meta(cfg, meta, task)
    model.task = task
    model.to(device)
    model.eval()
    if deploy:
        deploy_model(model, backend, precision, device, checkpoint)
    elif backend not in ('auto', 'pytorch') or precision != 'fp32':
        raise UserError(f'deploy=False keeps the model as trained in '
                        f'PyTorch fp32; backend={backend!r}, '
                        f'precision={precision!r} need deploy=True.')
    else:
        model.backend, model.precision = 'pytorch', 'fp32'
    return model


def _pose_backend(backend, precision):
    """Pose models run in PyTorch fp32: the backend ``'auto'`` resolves
    to."""
    if backend in ('auto', 'pytorch') and precision == 'fp32':
        return 'pytorch'
    raise BackendUnsupportedError(
        f'pose models run in PyTorch fp32 only (backend=\'auto\' or '
        f'\'pytorch\', precision=\'fp32\'); got backend={backend!r}, '
        f'precision={precision!r}.')


def _dataset_meta(cfg, meta, task):
    dataset_meta = meta.get('dataset_meta') if isinstance(meta, dict) else None
    if dataset_meta:
        return dict(dataset_meta)
    if task == 'pose':
        # As mmpose's init_model: the training set's (parsed) metainfo,
        # else COCO's.
        from mmpose.apis.inference import \
            dataset_meta_from_config  # optional: pose models
        from mmpose.datasets.datasets.utils import \
            parse_pose_metainfo  # optional: pose models
        return dataset_meta_from_config(cfg, 'train') or parse_pose_metainfo(
            dict(from_file='configs/_base_/datasets/coco.py'))
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
            from mmpretrain.datasets.categories import \
                IMAGENET_CATEGORIES  # optional: classifiers
            return dict(classes=IMAGENET_CATEGORIES)
    if task == 'det':
        from mmdet.datasets import CocoDataset  # optional: detectors
        return dict(CocoDataset.METAINFO)
    if task == 'seg':
        from mmseg.datasets import ADE20KDataset  # optional: segmentors
        return dict(ADE20KDataset.METAINFO)
    return {}


def _boxes(bboxes, bbox_format):
    """Person boxes as an (N, 4) float32 ``xyxy`` array (None: none)."""
    if bboxes is None:
        return None
    if bbox_format not in ('xyxy', 'xywh'):
        raise UserError(f"bbox_format must be 'xyxy' or 'xywh', got "
                        f'{bbox_format!r}.')
    boxes = np.asarray(bboxes, dtype=np.float32)
    if boxes.size == 0:
        return None
    if boxes.ndim == 1 and boxes.size == 4:
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise UserError(f'bboxes must be N x 4 (x1, y1, x2, y2), got shape '
                        f'{tuple(np.shape(bboxes))}.')
    if bbox_format == 'xywh':
        boxes = boxes.copy()
        boxes[:, 2:] += boxes[:, :2]
    return boxes


def _pose_inference(model, image, bboxes):
    """mmpose's top-down inference: one person per box (the whole image
    without boxes), merged into one data sample."""
    from mmpose.apis import inference_topdown  # optional: pose models
    from mmpose.structures import merge_data_samples  # optional: pose models
    samples = inference_topdown(model, image, bboxes)
    return merge_data_samples(samples)


# Guards what inference reads from, or writes to, a model's config. Building
# a pipeline switches mmengine's default scope, a process-wide setting that
# two threads must not switch at once.
_CFG_LOCK = threading.Lock()
# model -> (its test pipeline's config as text, the built pipeline)
_PIPELINES = weakref.WeakKeyDictionary()


def _cls_pipeline(model):
    """The classifier's test pipeline after its image loader, built once
    per model (again when its config's pipeline changed)."""
    steps = repr(model.cfg.test_dataloader.dataset.pipeline)
    with _CFG_LOCK:
        built = _PIPELINES.get(model)
        if built is None or built[0] != steps:
            built = (steps, test_pipeline_after_loader(model.cfg))
            _PIPELINES[model] = built
    return built[1]


def _drop_annotation_loading(cfg):
    """Remove ``LoadAnnotations`` from ``cfg.test_pipeline``, as mmseg's
    ``inference_model`` does on every call, once and under a lock: mmseg
    removes it from the list it iterates, and two threads doing so at once
    fail (``list.remove(x): x not in list``)."""
    with _CFG_LOCK:
        pipeline = cfg.get('test_pipeline') or []
        if any(t.get('type') == 'LoadAnnotations' for t in pipeline):
            pipeline[:] = [
                t for t in pipeline if t.get('type') != 'LoadAnnotations'
            ]


def inference_model(model: nn.Module,
                    img: Union[str, np.ndarray],
                    bboxes: Optional[Sequence] = None,
                    bbox_format: str = 'xyxy') -> BaseDataElement:
    """Run ``model`` (from :func:`init_model`) on one image.

    Args:
        img (str | np.ndarray): A path or an HxW(x3/4) array (BGR).
        bboxes (array-like, optional): Pose models only: person boxes,
            N x 4. Without them the whole image is one person (as mmpose's
            ``inference_topdown``).
        bbox_format (str): ``'xyxy'`` (default) or ``'xywh'``.

    Returns:
        The task's data sample with its predictions; for a pose model one
        ``PoseDataSample`` with a row per box in ``pred_instances``
        (``keypoints``, ``keypoint_scores``, ``bboxes``).

    One model may serve several threads at once: every backend runs
    concurrent calls on their own buffers (OpenVINO: one infer request per
    call in flight), and each call gets its own image's prediction.
    """
    task = getattr(model, 'task', None) or task_of(model.cfg)
    boxes = _boxes(bboxes, bbox_format)
    if boxes is not None and task != 'pose':
        raise UserError(f'bboxes are for pose models; this is a {task} '
                        f'model.')
    image = load_image(img, model.cfg)
    if task == 'pose':
        return _pose_inference(model, image, boxes)
    if task == 'det':
        from mmdet.apis import inference_detector  # optional: detectors
        return inference_detector(model, image)
    if task == 'seg':
        from mmseg.apis import \
            inference_model as seg_inference  # optional: segmentors
        _drop_annotation_loading(model.cfg)
        return seg_inference(model, image)
    pipeline = _cls_pipeline(model)
    data = pipeline(
        dict(img=image, img_shape=image.shape[:2], ori_shape=image.shape[:2]))
    batch = dict(inputs=[data['inputs']], data_samples=[data['data_samples']])
    with torch.no_grad():
        return model.test_step(batch)[0]
