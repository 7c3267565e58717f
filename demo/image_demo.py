# Copyright (c) mmvan contributors. All rights reserved.
"""Run a VAN model on one image, print the prediction and draw it.

    python demo/image_demo.py demo/cat.jpg configs/van/van-b0_8xb128_in1k.py \
        mmvan://van-b0_3rdparty_in1k --out-file cat_pred.png

Classifiers: the top-5 labels are written on the image. Detectors: boxes
(and masks). Segmentors: the class map blended over the image. The picture
has the input's size, up to --max-side (1280) pixels on its longest side.
"""
import argparse
import os
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
warnings.filterwarnings('ignore')

from mmvan.utils import cli  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'checkpoint',
        help='checkpoint: a file, an http(s):// URL or mmvan://<zoo name>')
    parser.add_argument('--out-file', help='where to write the picture')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--topk', type=int, default=5)
    parser.add_argument(
        '--no-deploy',
        action='store_true',
        help='run the model as trained instead of the folded one')
    parser.add_argument(
        '--score-thr', type=float, default=0.3, help='boxes to draw')
    parser.add_argument(
        '--max-side',
        type=int,
        default=1280,
        help='longest side of the picture (larger inputs are drawn on a '
        'scaled copy)')
    return parser.parse_args(argv)


def draw_classification(image_rgb, sample, classes, topk, out_file):
    import numpy as np
    from mmengine.visualization import Visualizer
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
    import mmcv
    import torch.nn.functional as F
    h, w = image_bgr.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale == 1.0:
        return image_bgr[..., ::-1].copy(), sample
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = mmcv.imresize(image_bgr, size, interpolation='area')[..., ::-1]
    drawn = sample.clone()
    if task == 'det':
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
    import mmcv
    if out_file:
        folder = osp.dirname(out_file)
        if folder:
            os.makedirs(folder, exist_ok=True)
        mmcv.imwrite(image_rgb[..., ::-1], out_file)


def main(argv=None):
    args = parse_args(argv)
    from mmvan.apis import inference_model, init_model, load_image

    # Decoded as the config's test pipeline does; clear errors before
    # building the model.
    image_bgr = load_image(args.img, cli.load_config(args.config))
    from mmvan.zoo import resolve
    resolve(args.checkpoint)  # a path, an URL or mmvan://<name>
    model = init_model(
        args.config,
        args.checkpoint,
        device=args.device,
        deploy=not args.no_deploy)
    sample = inference_model(model, image_bgr)
    # The picture is drawn on a copy no larger than --max-side.
    image_rgb, drawn = bounded(image_bgr, sample, model.task, args.max_side)
    del image_bgr
    classes = model.dataset_meta.get('classes', ())
    if model.task == 'cls':
        lines = draw_classification(image_rgb, drawn, classes, args.topk,
                                    args.out_file)
        print('top-%d:' % len(lines))
        for line in lines:
            print('  ' + line)
    elif model.task == 'det':
        from mmdet.visualization import DetLocalVisualizer
        vis = DetLocalVisualizer()
        vis.dataset_meta = model.dataset_meta
        vis.add_datasample(
            'result',
            image_rgb,
            drawn,
            draw_gt=False,
            pred_score_thr=args.score_thr,
            show=False)
        _save(vis.get_image(), args.out_file)
        inst = sample.pred_instances
        keep = inst.scores >= args.score_thr
        print(f'{int(keep.sum())} objects with score >= {args.score_thr}')
        for box, label, score in zip(inst.bboxes[keep], inst.labels[keep],
                                     inst.scores[keep]):
            name = classes[label] if label < len(classes) else int(label)
            print(f'  {name}: {score:.3f} at '
                  f'{[round(v, 1) for v in box.tolist()]}')
    else:
        from mmseg.visualization import SegLocalVisualizer
        vis = SegLocalVisualizer(alpha=0.5)
        vis.set_dataset_meta(
            classes=model.dataset_meta.get('classes'),
            palette=model.dataset_meta.get('palette'))
        vis.add_datasample(
            'result', image_rgb, drawn, draw_gt=False, show=False)
        _save(vis.get_image(), args.out_file)
        seg = sample.pred_sem_seg.data[0]
        labels, counts = seg.unique(return_counts=True)
        print('classes in the prediction (share of pixels):')
        for label, count in sorted(
                zip(labels.tolist(), counts.tolist()), key=lambda t: -t[1]):
            name = classes[label] if label < len(classes) else label
            print(f'  {name}: {count / seg.numel():.3f}')
    if args.out_file:
        print(f'picture saved to {args.out_file}')
    return sample


if __name__ == '__main__':
    cli.run_cli(main)
