# Copyright (c) mmvan contributors. All rights reserved.
"""Small data sets for the paper's other tasks, made deterministically for
demos and end-to-end tests on a CPU: COCO-panoptic shapes, COCO-keypoint
stick figures and a CUB-200-layout fine-grained set."""
import json
import os
import os.path as osp

import numpy as np
from PIL import Image, ImageDraw

from .demo_data import DETECTION_CLASSES, _build_in_place, _shape_polygon

PANOPTIC_THING_CLASSES = DETECTION_CLASSES
PANOPTIC_STUFF_CLASSES = ('sky', 'ground')
# Category ids as in COCO panoptic: not contiguous, stuff after things.
PANOPTIC_CATEGORY_IDS = (1, 2, 3, 101, 102)


def _id2rgb(ids):
    """COCO panoptic PNG colour of each segment id (id = R + 256 G +
    256^2 B)."""
    ids = np.asarray(ids, dtype=np.uint32)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256],
                    -1).astype(np.uint8)


def _bbox_of(mask):
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]


def _panoptic_image(rng, size, max_objects):
    """One picture with sky above a wavy horizon, textured ground below and
    1..max_objects shapes; returns the RGB image and the segment id map
    with its segments."""
    h = w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    horizon = (
        rng.uniform(0.35, 0.65) * h + rng.uniform(3, 8) *
        np.sin(xx[0] / rng.uniform(8, 20) + rng.uniform(0, 6)))
    sky = yy < horizon[None, :]
    sky_rgb = np.array(
        [rng.uniform(60, 120),
         rng.uniform(120, 180),
         rng.uniform(190, 250)])
    ground_rgb = np.array(
        [rng.uniform(70, 130),
         rng.uniform(90, 150),
         rng.uniform(20, 60)])
    # Ground carries stripes, sky a vertical gradient: texture as well as
    # colour tells them apart.
    stripes = ((yy + rng.uniform(0, 6)) % 6 < 3)[..., None] * 25.0
    gradient = (yy / h)[..., None] * 40.0
    img = np.where(sky[..., None], sky_rgb + gradient, ground_rgb + stripes)
    img = img + rng.normal(0, 8, img.shape)

    ids = np.where(sky, 1, 2).astype(np.uint32)
    segments = [
        dict(id=1, category_id=PANOPTIC_CATEGORY_IDS[3]),
        dict(id=2, category_id=PANOPTIC_CATEGORY_IDS[4])
    ]
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    boxes = []
    next_id = 3
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _ in range(20):  # a free place
            s = float(rng.integers(size // 5, size // 2))
            x = float(rng.uniform(0, size - s))
            y = float(rng.uniform(0, size - s))
            if all(x + s < bx or bx + bs < x or y + s < by or by + bs < y
                   for bx, by, bs in boxes):
                break
        else:
            continue
        boxes.append((x, y, s))
        label = int(rng.integers(0, len(PANOPTIC_THING_CLASSES)))
        poly = _shape_polygon(PANOPTIC_THING_CLASSES[label], x, y, s, rng)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        while max(colour) < 180:  # bright: never mistaken for the stuff
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.polygon(poly, fill=colour)
        mask_img = Image.new('L', (w, h), 0)
        ImageDraw.Draw(mask_img).polygon(poly, fill=1)
        mask = np.array(mask_img, dtype=bool)
        if not mask.any():
            continue
        ids[mask] = next_id
        segments.append(
            dict(id=next_id, category_id=PANOPTIC_CATEGORY_IDS[label]))
        next_id += 1
    # Drop segments hidden entirely; complete the rest.
    kept = []
    for seg in segments:
        mask = ids == seg['id']
        if not mask.any():
            continue
        seg.update(iscrowd=0, area=int(mask.sum()), bbox=_bbox_of(mask))
        kept.append(seg)
    return np.array(pil), ids, kept


def make_panoptic_demo(root,
                       num_train=120,
                       num_val=30,
                       size=96,
                       seed=0,
                       max_objects=3):
    """Write a COCO-panoptic-format set: 3 thing classes (square, disc,
    triangle) and 2 stuff classes (sky, ground).

    Layout as COCO panoptic 2017::

        root/{train,val}/*.jpg
        root/annotations/panoptic_{train,val}.json
        root/annotations/panoptic_{train,val}/*.png   (segment ids as RGB)

    Category ids are 1, 2, 3 (things) and 101, 102 (stuff), not contiguous,
    as in COCO. Deterministic; built in a temporary folder and renamed into
    place.

    Returns:
        str: ``root``.
    """
    if osp.isfile(osp.join(root, 'annotations', 'panoptic_val.json')):
        return root
    with _build_in_place(root) as tmp:
        rng = np.random.default_rng(seed)
        categories = [
            dict(id=cid, name=name, isthing=int(i < 3), supercategory='shape')
            for i, (cid, name) in enumerate(
                zip(PANOPTIC_CATEGORY_IDS, PANOPTIC_THING_CLASSES +
                    PANOPTIC_STUFF_CLASSES))
        ]
        for split, count in (('train', num_train), ('val', num_val)):
            png_dir = osp.join(tmp, 'annotations', f'panoptic_{split}')
            os.makedirs(png_dir)
            os.makedirs(osp.join(tmp, split))
            images, annotations = [], []
            for i in range(count):
                img, ids, segments = _panoptic_image(rng, size, max_objects)
                stem = f'{split}_{i:04d}'
                Image.fromarray(img).save(
                    osp.join(tmp, split, stem + '.jpg'), quality=95)
                Image.fromarray(_id2rgb(ids)).save(
                    osp.join(png_dir, stem + '.png'))
                images.append(
                    dict(
                        id=i + 1,
                        file_name=stem + '.jpg',
                        width=size,
                        height=size))
                annotations.append(
                    dict(
                        image_id=i + 1,
                        file_name=stem + '.png',
                        segments_info=segments))
            with open(
                    osp.join(tmp, 'annotations', f'panoptic_{split}.json'),
                    'w') as f:
                json.dump(
                    dict(
                        images=images,
                        annotations=annotations,
                        categories=categories), f)
    return root


# COCO's 17 keypoints, in COCO's order.
KEYPOINT_NAMES = ('nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear',
                  'left_shoulder', 'right_shoulder', 'left_elbow',
                  'right_elbow', 'left_wrist', 'right_wrist', 'left_hip',
                  'right_hip', 'left_knee', 'right_knee', 'left_ankle',
                  'right_ankle')
# COCO's skeleton (1-based keypoint indices).
COCO_SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12],
                 [7, 13], [6, 7], [6, 8], [7, 9], [8, 10], [9, 11], [2, 3],
                 [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]


def _stick_figure(rng, cx, top, height):
    """The 17 keypoints (x, y) of a person facing the camera: the person's
    left side is on the image's right, as in COCO."""
    u = height / 8.0  # head height
    neck_y = top + 1.6 * u
    shoulder = 1.1 * u
    hip_y = top + 4.4 * u
    hip = 0.7 * u
    head_x = cx + rng.uniform(-0.3, 0.3) * u
    pts = {}
    head_y = top + 0.7 * u
    pts['nose'] = (head_x, head_y + 0.15 * u)
    pts['left_eye'] = (head_x + 0.25 * u, head_y - 0.1 * u)
    pts['right_eye'] = (head_x - 0.25 * u, head_y - 0.1 * u)
    pts['left_ear'] = (head_x + 0.55 * u, head_y)
    pts['right_ear'] = (head_x - 0.55 * u, head_y)
    for side, sign in (('left', 1), ('right', -1)):
        sx, sy = cx + sign * shoulder, neck_y
        pts[f'{side}_shoulder'] = (sx, sy)
        # Arms hang or rise, each at its own angle (0 = straight down).
        a1 = rng.uniform(-0.3, 2.2)
        a2 = a1 + rng.uniform(-1.2, 1.2)
        ex, ey = sx + sign * np.sin(a1) * 1.5 * u, sy + np.cos(a1) * 1.5 * u
        pts[f'{side}_elbow'] = (ex, ey)
        pts[f'{side}_wrist'] = (ex + sign * np.sin(a2) * 1.4 * u,
                                ey + np.cos(a2) * 1.4 * u)
        hx, hy = cx + sign * hip, hip_y
        pts[f'{side}_hip'] = (hx, hy)
        b1 = rng.uniform(-0.15, 0.7)
        b2 = b1 + rng.uniform(-0.8, 0.2)
        kx, ky = hx + sign * np.sin(b1) * 1.8 * u, hy + np.cos(b1) * 1.8 * u
        pts[f'{side}_knee'] = (kx, ky)
        pts[f'{side}_ankle'] = (kx + sign * np.sin(b2) * 1.7 * u,
                                ky + np.cos(b2) * 1.7 * u)
    return np.array([pts[n] for n in KEYPOINT_NAMES], dtype=np.float32), u


# Limbs (0-based keypoint pairs) and colours: the same colour for a
# left/right pair, so that flipping the image (and swapping the labels)
# leaves a valid picture.
_LIMBS = (
    ((5, 7), (6, 8), (250, 90, 90)),  # upper arms
    ((7, 9), (8, 10), (250, 170, 60)),  # forearms
    ((11, 13), (12, 14), (90, 200, 250)),  # thighs
    ((13, 15), (14, 16), (120, 120, 250)),  # shins
    ((5, 11), (6, 12), (230, 230, 230)),  # flanks
    ((5, 6), (11, 12), (230, 230, 230)),  # shoulders, hips
)


def _draw_figure(draw, kpts, u):
    width = max(2, int(round(0.35 * u)))
    for first, second, colour in _LIMBS:
        for i, j in (first, second):
            draw.line([tuple(kpts[i]), tuple(kpts[j])],
                      fill=colour,
                      width=width)
    # Head, then the face's landmarks.
    nx, ny = kpts[0]
    r = 0.6 * u
    draw.ellipse([nx - r, ny - 0.15 * u - r, nx + r, ny - 0.15 * u + r],
                 fill=(240, 200, 160))
    for k, colour in ((1, (20, 20, 20)), (2, (20, 20, 20)), (0, (200, 60,
                                                                 60))):
        x, y = kpts[k]
        d = max(1.0, 0.12 * u)
        draw.ellipse([x - d, y - d, x + d, y + d], fill=colour)
    for k in (3, 4):
        x, y = kpts[k]
        d = max(1.0, 0.15 * u)
        draw.ellipse([x - d, y - d, x + d, y + d], fill=(200, 150, 110))
    # Joints as dark dots.
    for k in range(5, 17):
        x, y = kpts[k]
        d = max(1.0, 0.18 * u)
        draw.ellipse([x - d, y - d, x + d, y + d], fill=(40, 40, 40))


def make_keypoint_demo(root,
                       num_train=160,
                       num_val=40,
                       size=(160, 128),
                       seed=0,
                       max_people=2):
    """Write a COCO-keypoints-format set of stick figures.

    Each image (``size`` = (h, w)) holds 1..``max_people`` side-by-side
    figures facing the camera, with COCO's 17 keypoints (all visible),
    person boxes and areas, on a noisy background. Layout as COCO::

        root/{train,val}/*.jpg
        root/annotations/person_keypoints_{train,val}.json

    Deterministic; built in a temporary folder and renamed into place.

    Returns:
        str: ``root``.
    """
    if osp.isfile(osp.join(root, 'annotations', 'person_keypoints_val.json')):
        return root
    h, w = size
    with _build_in_place(root) as tmp:
        rng = np.random.default_rng(seed)
        os.makedirs(osp.join(tmp, 'annotations'))
        ann_id = 1
        for split, count in (('train', num_train), ('val', num_val)):
            os.makedirs(osp.join(tmp, split))
            images, annotations = [], []
            for i in range(count):
                bg = rng.integers(0, 90, 3)
                img = np.clip(bg + rng.normal(0, 14, (h, w, 3)), 0,
                              255).astype(np.uint8)
                pil = Image.fromarray(img)
                draw = ImageDraw.Draw(pil)
                people = int(rng.integers(1, max_people + 1))
                slot = w / people
                for p in range(people):
                    height = rng.uniform(0.55, 0.9) * h
                    cx = slot * (p + 0.5) + rng.uniform(-0.1, 0.1) * slot
                    top = rng.uniform(2, h - height - 2)
                    kpts, u = _stick_figure(rng, cx, top, height)
                    # Keep every joint inside the picture.
                    kpts[:, 0] = np.clip(kpts[:, 0], 2, w - 3)
                    kpts[:, 1] = np.clip(kpts[:, 1], 2, h - 3)
                    _draw_figure(draw, kpts, u)
                    x0, y0 = kpts.min(0) - 0.6 * u
                    x1, y1 = kpts.max(0) + 0.6 * u
                    x0, y0 = max(0.0, x0), max(0.0, y0)
                    x1, y1 = min(w - 1.0, x1), min(h - 1.0, y1)
                    flat = np.concatenate([kpts, np.full((17, 1), 2.0)], 1)
                    annotations.append(
                        dict(
                            id=ann_id,
                            image_id=i + 1,
                            category_id=1,
                            bbox=[
                                round(float(v), 2)
                                for v in (x0, y0, x1 - x0, y1 - y0)
                            ],
                            area=round(float((x1 - x0) * (y1 - y0)), 2),
                            keypoints=[
                                round(float(v), 2) for v in flat.reshape(-1)
                            ],
                            num_keypoints=17,
                            iscrowd=0))
                    ann_id += 1
                stem = f'{split}_{i:04d}'
                pil.save(osp.join(tmp, split, stem + '.jpg'), quality=95)
                images.append(
                    dict(id=i + 1, file_name=stem + '.jpg', width=w, height=h))
            coco = dict(
                images=images,
                annotations=annotations,
                categories=[
                    dict(
                        id=1,
                        name='person',
                        supercategory='person',
                        keypoints=list(KEYPOINT_NAMES),
                        skeleton=COCO_SKELETON)
                ])
            with open(
                    osp.join(tmp, 'annotations',
                             f'person_keypoints_{split}.json'), 'w') as f:
                json.dump(coco, f)
    return root


# Four "species" of one body plan that differ only in small parts: the
# beak's colour and a bar on the wing.
CUB_DEMO_CLASSES = ('001.Yellowbill_Plain', '002.Yellowbill_Barred',
                    '003.Blackbill_Plain', '004.Blackbill_Barred')


def _bird(rng, label, size):
    img = np.clip(
        rng.integers(40, 120, 3) + rng.normal(0, 12, (size, size, 3)), 0,
        255).astype(np.uint8)
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    s = size * rng.uniform(0.7, 0.9)
    cx = size / 2 + rng.uniform(-0.08, 0.08) * size
    cy = size / 2 + rng.uniform(-0.08, 0.08) * size
    facing = rng.choice([-1, 1])
    body = tuple(int(c) for c in rng.integers(120, 200, 3))
    bw, bh = 0.32 * s, 0.2 * s
    draw.ellipse([cx - bw, cy - bh, cx + bw, cy + bh], fill=body)
    hx, hy, hr = cx + facing * 0.3 * s, cy - 0.2 * s, 0.11 * s
    draw.ellipse([hx - hr, hy - hr, hx + hr, hy + hr], fill=body)
    draw.ellipse([
        hx + facing * 0.03 * s - 2, hy - 0.03 * s - 2,
        hx + facing * 0.03 * s + 2, hy - 0.03 * s + 2
    ],
                 fill=(10, 10, 10))
    beak = (235, 200, 30) if label < 2 else (15, 15, 15)
    bx = hx + facing * hr
    draw.polygon([(bx, hy - 0.04 * s), (bx + facing * 0.12 * s, hy),
                  (bx, hy + 0.04 * s)],
                 fill=beak)
    if label % 2 == 1:  # a pale bar across the wing
        draw.line([(cx - facing * 0.15 * s, cy - 0.1 * s),
                   (cx + facing * 0.1 * s, cy + 0.05 * s)],
                  fill=(245, 245, 245),
                  width=max(2, int(0.04 * s)))
    draw.line([(cx - facing * bw, cy),
               (cx - facing * (bw + 0.15 * s), cy - 0.06 * s)],
              fill=body,
              width=max(2, int(0.06 * s)))
    return pil


def make_cub_demo(root, num_train=60, num_test=20, size=80, seed=0):
    """Write a 4-class fine-grained set in CUB-200-2011's layout.

    The classes share one body plan and differ in a small part (the beak's
    colour, a bar on the wing), as bird species do. Files as in CUB::

        root/images/<class>/*.jpg
        root/images.txt              "<id> <class>/<file>"
        root/image_class_labels.txt  "<id> <label from 1>"
        root/train_test_split.txt    "<id> <1 train | 0 test>"
        root/classes.txt             "<label from 1> <class>"

    Deterministic; built in a temporary folder and renamed into place.

    Returns:
        str: ``root``.
    """
    if osp.isfile(osp.join(root, 'train_test_split.txt')):
        return root
    with _build_in_place(root) as tmp:
        rng = np.random.default_rng(seed)
        images, labels, splits = [], [], []
        n = 0
        for label, name in enumerate(CUB_DEMO_CLASSES):
            os.makedirs(osp.join(tmp, 'images', name))
            for i in range(num_train + num_test):
                n += 1
                fname = f'{name}/{name.split(".")[1]}_{i:04d}.jpg'
                _bird(rng, label, size).save(
                    osp.join(tmp, 'images', fname), quality=95)
                images.append(f'{n} {fname}')
                labels.append(f'{n} {label + 1}')
                splits.append(f'{n} {int(i < num_train)}')
        for fname, lines in (('images.txt', images), ('image_class_labels.txt',
                                                      labels),
                             ('train_test_split.txt',
                              splits), ('classes.txt', [
                                  f'{k + 1} {c}'
                                  for k, c in enumerate(CUB_DEMO_CLASSES)
                              ])):
            with open(osp.join(tmp, fname), 'w') as f:
                f.write('\n'.join(lines) + '\n')
    return root
