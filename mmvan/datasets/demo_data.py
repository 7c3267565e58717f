# Copyright (c) mmvan contributors. All rights reserved.
"""Small labelled data sets that mmvan makes deterministically, for demos
and end-to-end tests on a CPU."""
import os
import os.path as osp
import shutil
import tempfile

import numpy as np
from PIL import Image

CLASSIFICATION_CLASSES = ('horizontal_stripes', 'vertical_stripes',
                          'diagonal_stripes', 'checkerboard', 'dots')


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
    parent = osp.dirname(osp.abspath(root))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.demo-', dir=parent)
    try:
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
        if osp.exists(root):
            shutil.rmtree(root)
        os.replace(tmp, root)
    finally:
        if osp.exists(tmp):
            shutil.rmtree(tmp)
    return root
