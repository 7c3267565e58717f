# ImageNet-Sketch (Wang et al., Learning Robust Global Representations by
# Penalizing Local Predictive Power, NeurIPS 2019,
# https://arxiv.org/abs/1905.13549): 50,889 black-and-white sketches, about
# 50 for each of the 1000 ImageNet-1k classes. Download:
# https://github.com/HaohanWang/ImageNet-Sketch (README).
#
# Layout: <data_root>/<wnid>/*.JPEG (the archive unpacks to sketch/; the
# tool also finds the class folders one level down).
#
# Evaluate with
#   python tools/analysis_tools/robustness.py CONFIG CKPT \
#       --benchmark imagenet-sketch --data-root data/imagenet-sketch
# With all 1000 class folders present, the sorted folders are the
# ImageNet-1k indices, so this dataset also works with tools/test.py.
dataset_type = 'CustomDataset'
data_root = 'data/imagenet-sketch'

# VAN's ImageNet test transform: short side 248 (bicubic), centre 224.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge',
        scale=248,
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix='',
        with_label=True,
        pipeline=test_pipeline))
test_evaluator = dict(type='Accuracy', topk=(1, ))
