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
import os.path as osp

import numpy as np
import torch

from mmvan.utils.config import sync_bn_to_bn
from mmvan.utils.errors import UserError

TASKS = {'mmpretrain': 'cls', 'mmdet': 'det', 'mmseg': 'seg', 'mmpose': 'pose'}


def task_of(cfg):
    scope = cfg.get('default_scope', 'mmpretrain')
    if scope not in TASKS:
        raise UserError(f'Unsupported default_scope {scope!r}; expected one '
                        f'of {sorted(TASKS)}.')
    return TASKS[scope]


# Larger images are refused before decoding (PIL's decompression-bomb guard
# is the model: its limit is 89.5 M pixels, twice that is an error).
MAX_PIXELS = 178_956_970
# Width / height (or height / width) beyond this is refused: resizing the
# short side to the model's input would make a huge tensor.
MAX_ASPECT = 50


def _check_size(h, w, what):
    from mmvan.utils.errors import DataError
    if h * w > MAX_PIXELS:
        raise DataError(
            f'{what} is {w}x{h} = {h * w / 1e6:.0f} M pixels, more than the '
            f'{MAX_PIXELS / 1e6:.0f} M mmvan decodes (a decompression bomb '
            f'guard). Downscale it first.')
    if min(h, w) == 0 or max(h, w) / min(h, w) > MAX_ASPECT:
        raise DataError(
            f'{what} is {w}x{h}: an aspect ratio beyond 1:{MAX_ASPECT}, '
            f'which the test pipeline would blow up to a huge tensor. Crop '
            f'it first.')


def _loader_args(cfg):
    """``color_type`` and ``imdecode_backend`` of the config's test
    loader (mmcv's defaults without one)."""
    args = dict(color_type='color', imdecode_backend='cv2')
    if cfg is None:
        return args
    for name in ('test_dataloader', 'val_dataloader'):
        pipeline = (cfg.get(name) or {}).get('dataset', {}).get('pipeline')
        for step in pipeline or []:
            if isinstance(step, dict) and str(step.get(
                    'type', '')).endswith('LoadImageFromFile'):
                for key in args:
                    if key in step:
                        args[key] = step[key]
                return args
    return args


def load_image(img, cfg=None):
    """An image as an ``HxWx3`` uint8 BGR array (OpenMMLab's convention),
    decoded exactly as the config's test pipeline decodes it.

    A path is read with mmcv's decoder and the test loader's settings
    (``color_type``, ``imdecode_backend``): EXIF orientation applied, 16-bit
    images reduced as the loader does, gray and RGBA made 3-channel. An
    array is taken as BGR (gray and RGBA made 3-channel). Images beyond
    :data:`MAX_PIXELS` or an aspect ratio of 1:``MAX_ASPECT`` are refused
    before decoding. Unreadable inputs raise
    :class:`~mmvan.utils.errors.UserError`.
    """
    from mmvan.utils.errors import DataError
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
        _check_size(arr.shape[0], arr.shape[1], 'The image array')
        if arr.dtype != np.uint8:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(arr)
    import mmcv
    from PIL import Image, UnidentifiedImageError
    path = str(img)
    if not osp.isfile(path):
        raise UserError(f'Image {path} does not exist.')
    try:
        with Image.open(path) as pil:
            w, h = pil.size
    except UnidentifiedImageError:
        raise UserError(f'{path} is not an image that can be read (PIL '
                        f'does not recognise its format).') from None
    except Image.DecompressionBombError as e:
        raise DataError(f'{path}: {e}') from None
    except OSError as e:
        raise UserError(f'Cannot read image {path}: {e}.') from None
    _check_size(h, w, path)
    args = _loader_args(cfg)
    try:
        with open(path, 'rb') as f:
            arr = mmcv.imfrombytes(
                f.read(),
                flag=args['color_type'],
                backend=args['imdecode_backend'])
    except Exception as e:  # noqa: B902 - cv2 and PIL raise their own
        raise UserError(f'Cannot read image {path}: {e}.') from None
    if arr is None:
        raise UserError(f'Cannot read image {path}: it is truncated or '
                        f'corrupt.')
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3])


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
               deploy=True,
               backend='auto',
               precision='fp32'):
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
            ``'onnxruntime'`` or ``'openvino'``. An engine runs the exported
            folded model (a classifier whole, a detector's or segmentor's
            backbone), cached next to the checkpoint and checked against
            the PyTorch model on real images when built (1e-4 relative in
            fp32, or it refuses). ``'auto'`` picks the fastest exact engine
            installed for ``device`` (:func:`mmvan.backends.pick_backend`)
            when weights come from a checkpoint, and PyTorch otherwise.
            Pose models always run in PyTorch: ``'auto'`` resolves to
            ``'pytorch'`` for them and an engine asked for by name is
            refused.
        precision (str): ``'fp32'`` (default); ``'bf16'`` (OpenVINO,
            PyTorch) or ``'int8'`` (ONNX Runtime) only when asked for; pose
            models: ``'fp32'`` only.

    Returns:
        nn.Module: in eval mode, with ``cfg``, ``dataset_meta``, ``task``,
        ``backend`` and ``precision`` set.
    """
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope, init_default_scope

    from mmvan.utils.config import load_config
    if deploy:
        from mmvan.backends.model import check_request
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
        meta = load_weights(model, checkpoint, getattr(cfg, 'filename', ''))
    model.cfg = cfg
    model.dataset_meta = _dataset_meta(cfg, meta, task)
    model.task = task
    model.to(device)
    model.eval()
    if deploy:
        from mmvan.backends import deploy_model
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
    from mmvan.backends import BackendUnsupportedError
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
        from mmpose.apis.inference import dataset_meta_from_config
        from mmpose.datasets.datasets.utils import parse_pose_metainfo
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
    from mmpose.apis import inference_topdown
    from mmpose.structures import merge_data_samples
    samples = inference_topdown(model, image, bboxes)
    return merge_data_samples(samples)


def inference_model(model, img, bboxes=None, bbox_format='xyxy'):
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
