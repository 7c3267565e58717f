# Copyright (c) mmvan contributors. All rights reserved.
"""Small labelled data sets that mmvan makes deterministically, for demos
and end-to-end tests on a CPU."""
import contextlib
import json
import os
import os.path as osp
import shutil
import tempfile

import numpy as np
from PIL import Image, ImageDraw

CLASSIFICATION_CLASSES = ('horizontal_stripes', 'vertical_stripes',
                          'diagonal_stripes', 'checkerboard', 'dots')


@contextlib.contextmanager
def _build_in_place(root):
    """Yield a temporary folder beside ``root``; on success it replaces
    ``root``, on failure it is removed, so no partial data set is left."""
    parent = osp.dirname(osp.abspath(root))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.demo-', dir=parent)
    try:
        yield tmp
        if osp.exists(root):
            shutil.rmtree(root)
        os.replace(tmp, root)
    finally:
        if osp.exists(tmp):
            shutil.rmtree(tmp)


def _colours(rng):
    """Two random colours that differ clearly in brightness."""
    while True:
        a, b = rng.integers(0, 256, size=(2, 3))
        if abs(int(a.mean()) - int(b.mean())) > 60:
            return a, b


def _texture(label, size, rng):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = rng.uniform(6, 14)
    phase = rng.uniform(0, period)
    name = CLASSIFICATION_CLASSES[label]
    if name == 'horizontal_stripes':
        mask = ((yy + phase) % period) < period / 2
    elif name == 'vertical_stripes':
        mask = ((xx + phase) % period) < period / 2
    elif name == 'diagonal_stripes':
        sign = rng.choice([-1, 1])
        mask = ((xx + sign * yy + phase) % (period * 1.4)) < period * 0.7
    elif name == 'checkerboard':
        mask = (((yy + phase) // (period / 2) + (xx + phase) // (period / 2)) %
                2) == 0
    else:  # dots on a jittered grid
        cy = (yy + phase) % period - period / 2
        cx = (xx + phase) % period - period / 2
        mask = cy**2 + cx**2 < (period * rng.uniform(0.2, 0.32))**2
    fg, bg = _colours(rng)
    img = np.where(mask[..., None], fg, bg).astype(np.float32)
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_classification_demo(root,
                             num_train=120,
                             num_val=40,
                             size=64,
                             seed=0,
                             odd_modes=True):
    """Write a 5-class texture classification set in ImageNet's layout.

    ``root/train/<class>/*.png``, ``root/val/<class>/*.png`` and
    ``root/meta/{train,val}.txt`` (``<class>/<file> <label>`` per line). The
    same arguments always give the same files. With ``odd_modes``, some
    images are stored as grayscale or RGBA, as real data sets contain.

    The set is built in a temporary folder beside ``root`` and renamed into
    place, so an interrupted run leaves no partial data.

    Returns:
        str: ``root``.
    """
    if osp.isdir(root) and osp.isfile(osp.join(root, 'meta', 'val.txt')):
        return root
    with _build_in_place(root) as tmp:
        rng = np.random.default_rng(seed)
        os.makedirs(osp.join(tmp, 'meta'))
        for split, per_class in (('train', num_train), ('val', num_val)):
            lines = []
            for label, name in enumerate(CLASSIFICATION_CLASSES):
                folder = osp.join(tmp, split, name)
                os.makedirs(folder)
                for i in range(per_class):
                    img = Image.fromarray(_texture(label, size, rng))
                    if odd_modes and i % 17 == 3:
                        img = img.convert('L')
                    elif odd_modes and i % 17 == 7:
                        img = img.convert('RGBA')
                    fname = f'{name}_{i:04d}.png'
                    img.save(osp.join(folder, fname))
                    lines.append(f'{name}/{fname} {label}')
            with open(osp.join(tmp, 'meta', f'{split}.txt'), 'w') as f:
                f.write('\n'.join(lines) + '\n')
    return root


DETECTION_CLASSES = ('square', 'disc', 'triangle')


def _shape_polygon(kind, x, y, s, rng):
    """Polygon (flat x, y list) of a shape in the box (x, y, s, s)."""
    if kind == 'square':
        return [x, y, x + s, y, x + s, y + s, x, y + s]
    if kind == 'triangle':
        return [x + s / 2, y, x + s, y + s, x, y + s]
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    r = s / 2
    pts = np.stack([x + r + r * np.cos(angles), y + r + r * np.sin(angles)], 1)
    return pts.reshape(-1).tolist()


def make_detection_demo(root,
                        num_train=160,
                        num_val=40,
                        size=160,
                        seed=0,
                        max_objects=3):
    """Write a 3-class COCO-format detection / instance segmentation set.

    Each image holds 1 to ``max_objects`` non-overlapping squares, discs and
    triangles (24-64 px) in random bright colours on a dark noisy
    background. Layout: ``root/{train,val}/*.png`` and
    ``root/annotations/instances_{train,val}.json`` with boxes and polygon
    masks. Deterministic; built in a temporary folder and renamed into
    place.

    Returns:
        str: ``root``.
    """
    if osp.isfile(osp.join(root, 'annotations', 'instances_val.json')):
        return root
    with _build_in_place(root) as tmp:
        rng = np.random.default_rng(seed)
        os.makedirs(osp.join(tmp, 'annotations'))
        ann_id = 1
        for split, count in (('train', num_train), ('val', num_val)):
            os.makedirs(osp.join(tmp, split))
            images, annotations = [], []
            for i in range(count):
                bg = rng.integers(0, 70, 3)
                img = np.clip(bg + rng.normal(0, 10, (size, size, 3)), 0,
                              255).astype(np.uint8)
                pil = Image.fromarray(img)
                draw = ImageDraw.Draw(pil)
                boxes = []
                for _ in range(int(rng.integers(1, max_objects + 1))):
                    for _ in range(20):  # find a free place
                        s = float(rng.integers(24, 65))
                        x = float(rng.uniform(0, size - s))
                        y = float(rng.uniform(0, size - s))
                        if all(x + s < bx or bx + bs < x or y + s < by or by +
                               bs < y for bx, by, bs in boxes):
                            break
                    else:
                        continue
                    boxes.append((x, y, s))
                    label = int(rng.integers(0, len(DETECTION_CLASSES)))
                    kind = DETECTION_CLASSES[label]
                    poly = _shape_polygon(kind, x, y, s, rng)
                    colour = tuple(int(c) for c in rng.integers(140, 256, 3))
                    draw.polygon(poly, fill=colour)
                    xs, ys = poly[0::2], poly[1::2]
                    x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
                    annotations.append(
                        dict(
                            id=ann_id,
                            image_id=i + 1,
                            category_id=label + 1,
                            bbox=[x0, y0, x1 - x0, y1 - y0],
                            area=float((x1 - x0) * (y1 - y0)),
                            segmentation=[poly],
                            iscrowd=0))
                    ann_id += 1
                fname = f'{split}_{i:04d}.png'
                pil.save(osp.join(tmp, split, fname))
                images.append(
                    dict(id=i + 1, file_name=fname, width=size, height=size))
            coco = dict(
                images=images,
                annotations=annotations,
                categories=[
                    dict(id=k + 1, name=n)
                    for k, n in enumerate(DETECTION_CLASSES)
                ])
            with open(
                    osp.join(tmp, 'annotations', f'instances_{split}.json'),
                    'w') as f:
                json.dump(coco, f)
    return root


SEGMENTATION_CLASSES = ('background', 'square', 'disc', 'triangle')


def make_segmentation_demo(root,
                           num_train=120,
                           num_val=30,
                           size=(128, 160),
                           seed=0,
                           max_objects=4):
    """Write a 4-class semantic segmentation set in ADE20K's layout.

    ``root/images/{training,validation}/*.jpg`` and
    ``root/annotations/{training,validation}/*.png``. As in ADE20K, label 0
    means "not labelled" (here a 2-pixel band around each shape) and the
    classes are 1..4 (background, square, disc, triangle), so the data is
    read with ``reduce_zero_label=True``. Images are ``size`` = (h, w),
    not square. Deterministic; built in a temporary folder and renamed into
    place.

    Returns:
        str: ``root``.
    """
    if osp.isdir(osp.join(root, 'annotations', 'validation')):
        return root
    h, w = size
    with _build_in_place(root) as tmp:
        rng = np.random.default_rng(seed)
        for split, count in (('training', num_train), ('validation', num_val)):
            os.makedirs(osp.join(tmp, 'images', split))
            os.makedirs(osp.join(tmp, 'annotations', split))
            for i in range(count):
                bg = rng.integers(0, 90, 3)
                img = np.clip(bg + rng.normal(0, 12, (h, w, 3)), 0,
                              255).astype(np.uint8)
                pil = Image.fromarray(img)
                label = Image.new('L', (w, h), 1)
                draw = ImageDraw.Draw(pil)
                draw_label = ImageDraw.Draw(label)
                for _ in range(int(rng.integers(1, max_objects + 1))):
                    s = float(rng.integers(20, 56))
                    x = float(rng.uniform(0, w - s))
                    y = float(rng.uniform(0, h - s))
                    k = int(rng.integers(0, 3))
                    poly = _shape_polygon(DETECTION_CLASSES[k], x, y, s, rng)
                    colour = tuple(int(c) for c in rng.integers(130, 256, 3))
                    draw.polygon(poly, fill=colour)
                    draw_label.polygon(poly, fill=k + 2)
                    # An unlabelled band across the boundary.
                    draw_label.line(poly + poly[:2], fill=0, width=4)
                stem = f'ADE_{split}_{i:08d}'
                pil.save(
                    osp.join(tmp, 'images', split, stem + '.jpg'), quality=95)
                label.save(osp.join(tmp, 'annotations', split, stem + '.png'))
    return root
