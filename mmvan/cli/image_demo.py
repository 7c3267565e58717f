# Copyright (c) mmvan contributors. All rights reserved.
"""What ``demo/image_demo.py`` runs: a model on one image, its prediction
printed and drawn (:func:`image_demo`).

Classifiers: the top-5 labels are written on the image. Detectors: boxes
(and masks); panoptic models (Mask2Former): every segment coloured by class,
things outlined and labelled. Pose models (mmpose, top-down): the skeletons
of the people in ``bboxes`` (default: the whole image is one person).
Segmentors: the class map blended over the image. The picture has the
input's size, up to ``max_side`` pixels on its longest side.
"""
import os
import os.path as osp

import mmcv
import numpy as np
import torch.nn.functional as F
from mmengine.visualization import Visualizer

from mmvan.analysis.common import ignore_build_notes
from mmvan.apis import inference_model, init_model, load_image, task_of
from mmvan.utils.config import load_config
from mmvan.utils.errors import UserError
from mmvan.zoo import resolve

__all__ = [
    'draw_classification', 'bounded', 'print_panoptic', 'draw_skeletons',
    'person_boxes', 'show_pose', 'image_demo'
]


def draw_classification(image_rgb, sample, classes, topk, out_file):
    scores = sample.pred_score
    k = min(topk, scores.numel())
    values, indices = scores.topk(k)
    lines = []
    for score, idx in zip(values.tolist(), indices.tolist()):
        name = classes[idx] if idx < len(classes) else str(idx)
        lines.append(f'{name}: {score:.3f}')
    vis = Visualizer(image=image_rgb)
    h, w = image_rgb.shape[:2]
    size = max(10, min(h, w) // 22)
    for i, line in enumerate(lines):
        vis.draw_texts(
            line,
            positions=np.array([8, 6 + i * (size + 6)]),
            font_sizes=size,
            colors='white',
            bboxes=dict(facecolor='black', alpha=0.6, pad=2, edgecolor='none'))
    _save(vis.get_image(), out_file)
    return lines


def bounded(image_bgr, sample, task, max_side):
    """An RGB copy of the image no larger than ``max_side`` and the sample
    with its boxes, masks and maps scaled to it."""
    h, w = image_bgr.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale == 1.0:
        return image_bgr[..., ::-1].copy(), sample
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = mmcv.imresize(image_bgr, size, interpolation='area')[..., ::-1]
    drawn = sample.clone()
    if task == 'det' and 'pred_panoptic_seg' in drawn:
        pan = drawn.pred_panoptic_seg.sem_seg.float()[None]
        drawn.pred_panoptic_seg.sem_seg = F.interpolate(
            pan, size=size[::-1], mode='nearest')[0].long()
    if task == 'det' and 'pred_instances' in drawn:
        inst = drawn.pred_instances
        inst.bboxes = inst.bboxes * scale
        if 'masks' in inst:
            masks = inst.masks.float()[None]
            inst.masks = F.interpolate(
                masks, size=size[::-1], mode='nearest')[0].bool()
    elif task == 'seg':
        seg = drawn.pred_sem_seg.data.float()[None]
        drawn.pred_sem_seg.data = F.interpolate(
            seg, size=size[::-1], mode='nearest')[0].long()
    return small.copy(), drawn


def _save(image_rgb, out_file):
    if out_file:
        folder = osp.dirname(out_file)
        if folder:
            os.makedirs(folder, exist_ok=True)
        mmcv.imwrite(image_rgb[..., ::-1], out_file)


def print_panoptic(sample, meta):
    """Each segment of a panoptic prediction: class and share of pixels.

    mmdet encodes a segment as ``label + instance * INSTANCE_OFFSET``; the
    void label is the class count."""
    from mmdet.evaluation import INSTANCE_OFFSET  # optional: detection
    classes = meta.get('classes', ())
    pan = sample.pred_panoptic_seg.sem_seg[0]
    ids, counts = pan.unique(return_counts=True)
    print('panoptic segments (share of pixels):')
    for seg, count in sorted(
            zip(ids.tolist(), counts.tolist()), key=lambda t: -t[1]):
        label = seg % INSTANCE_OFFSET
        if label >= len(classes):
            continue  # void
        kind = 'thing' if seg >= INSTANCE_OFFSET else 'stuff'
        print(f'  {classes[label]} ({kind}): {count / pan.numel():.3f}')


def draw_skeletons(image_rgb, sample, meta, kpt_thr):
    """Boxes, limbs and joints of each person, in the dataset's colours.

    (mmpose 1.3's own visualizer passes arrays where numpy 2 needs
    scalars.)"""
    vis = Visualizer(image=image_rgb)
    h = image_rgb.shape[0]
    width = max(1, round(2 * h / 256))
    radius = max(2, round(3 * h / 256))
    links = meta.get('skeleton_links', [])
    link_colours = meta.get('skeleton_link_colors', [])
    kpt_colours = meta.get('keypoint_colors', [])
    inst = sample.pred_instances
    for box in inst.bboxes:
        vis.draw_bboxes(
            np.asarray(box)[None], edge_colors='white', line_widths=1)
    for kpts, scores in zip(inst.keypoints, inst.keypoint_scores):
        for k, (i, j) in enumerate(links):
            if min(scores[i], scores[j]) < kpt_thr:
                continue
            colour = tuple(int(c) for c in link_colours[k]) \
                if len(link_colours) > k else (0, 255, 0)
            vis.draw_lines(
                np.array([kpts[i][0], kpts[j][0]]),
                np.array([kpts[i][1], kpts[j][1]]),
                colors=[colour],
                line_widths=width)
        for k, (xy, score) in enumerate(zip(kpts, scores)):
            if score < kpt_thr:
                continue
            colour = tuple(int(c) for c in kpt_colours[k]) \
                if len(kpt_colours) > k else (255, 0, 0)
            vis.draw_circles(
                np.asarray(xy)[None],
                np.array([radius]),
                edge_colors=[colour],
                face_colors=[colour])
    return vis.get_image()


def person_boxes(values):
    """--bboxes as an (N, 4) array, or None (the whole image)."""
    if not values:
        return None
    if len(values) % 4:
        raise UserError('--bboxes takes 4 numbers per person.')
    return np.array(values, dtype=np.float32).reshape(-1, 4)


def show_pose(model,
              image_bgr,
              sample,
              out_file=None,
              score_thr=0.3,
              max_side=1280):
    """Top-down pose: skeletons drawn, keypoints of each person printed."""
    h, w = image_bgr.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    drawn = sample.clone()
    image_rgb = image_bgr[..., ::-1].copy()
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image_rgb = mmcv.imresize(
            image_bgr, size, interpolation='area')[..., ::-1].copy()
        drawn.pred_instances.keypoints = sample.pred_instances.keypoints * \
            scale
        drawn.pred_instances.bboxes = sample.pred_instances.bboxes * scale
    _save(
        draw_skeletons(image_rgb, drawn, model.dataset_meta, score_thr),
        out_file)
    names = model.dataset_meta.get('keypoint_id2name', {})
    inst = sample.pred_instances
    for i, (kpts,
            scores) in enumerate(zip(inst.keypoints, inst.keypoint_scores)):
        print(f'person {i}: {int((scores >= score_thr).sum())} of '
              f'{len(scores)} keypoints with score >= {score_thr}')
        for k, ((x, y), score) in enumerate(zip(kpts, scores)):
            print(f'  {names.get(k, k)}: ({x:.1f}, {y:.1f}) {score:.2f}')
    if out_file:
        print(f'picture saved to {out_file}')
    return sample


def image_demo(img,
               config,
               checkpoint,
               out_file=None,
               device='cpu',
               topk=5,
               no_deploy=False,
               score_thr=0.3,
               bboxes=None,
               max_side=1280):
    """Run a model on one image, print the prediction and draw it into
    ``out_file``, as ``demo/image_demo.py`` does; returns the data
    sample."""
    cfg = load_config(config)
    boxes = person_boxes(bboxes)
    if boxes is not None and task_of(cfg) != 'pose':
        raise UserError('--bboxes is for pose models.')
    # Decoded as the config's test pipeline does; clear errors before
    # building the model.
    image_bgr = load_image(img, cfg)
    resolve(checkpoint)  # a path, an URL or mmvan://<name>
    with ignore_build_notes():
        model = init_model(
            config, checkpoint, device=device, deploy=not no_deploy)
    if model.task == 'pose':
        return show_pose(model, image_bgr,
                         inference_model(model, image_bgr, bboxes=boxes),
                         out_file, score_thr, max_side)
    sample = inference_model(model, image_bgr)
    # The picture is drawn on a copy no larger than --max-side.
    image_rgb, drawn = bounded(image_bgr, sample, model.task, max_side)
    del image_bgr
    classes = model.dataset_meta.get('classes', ())
    if model.task == 'cls':
        lines = draw_classification(image_rgb, drawn, classes, topk, out_file)
        print('top-%d:' % len(lines))
        for line in lines:
            print('  ' + line)
    elif model.task == 'det':
        from mmdet import evaluation, visualization  # optional: detection
        vis = visualization.DetLocalVisualizer()
        if 'pred_panoptic_seg' in drawn:
            # mmdet 3.3 cannot draw a panoptic map with no segment (all
            # void): then the picture is the input.
            void = len(model.dataset_meta.get('classes', ()))
            pan = drawn.pred_panoptic_seg.sem_seg % evaluation.INSTANCE_OFFSET
            if not (pan != void).any():
                del drawn.pred_panoptic_seg
        vis.dataset_meta = model.dataset_meta
        vis.add_datasample(
            'result',
            image_rgb,
            drawn,
            draw_gt=False,
            pred_score_thr=score_thr,
            show=False)
        _save(vis.get_image(), out_file)
        if 'pred_panoptic_seg' in sample:
            print_panoptic(sample, model.dataset_meta)
        if 'pred_instances' not in sample:
            if out_file:
                print(f'picture saved to {out_file}')
            return sample
        inst = sample.pred_instances
        keep = inst.scores >= score_thr
        print(f'{int(keep.sum())} objects with score >= {score_thr}')
        for box, label, score in zip(inst.bboxes[keep], inst.labels[keep],
                                     inst.scores[keep]):
            name = classes[label] if label < len(classes) else int(label)
            print(f'  {name}: {score:.3f} at '
                  f'{[round(v, 1) for v in box.tolist()]}')
    else:
        from mmseg import visualization  # optional: segmentation
        vis = visualization.SegLocalVisualizer(alpha=0.5)
        vis.set_dataset_meta(
            classes=model.dataset_meta.get('classes'),
            palette=model.dataset_meta.get('palette'))
        vis.add_datasample(
            'result', image_rgb, drawn, draw_gt=False, show=False)
        _save(vis.get_image(), out_file)
        seg = sample.pred_sem_seg.data[0]
        labels, counts = seg.unique(return_counts=True)
        print('classes in the prediction (share of pixels):')
        for label, count in sorted(
                zip(labels.tolist(), counts.tolist()), key=lambda t: -t[1]):
            name = classes[label] if label < len(classes) else label
            print(f'  {name}: {count / seg.numel():.3f}')
    if out_file:
        print(f'picture saved to {out_file}')
    return sample
