# ImageNet-A (Hendrycks et al., Natural Adversarial Examples, CVPR 2021,
# https://arxiv.org/abs/1907.07174): 7,500 natural images of 200
# ImageNet-1k classes that fool ResNet-50 classifiers. Download:
# https://github.com/hendrycks/natural-adv-examples (README).
#
# Layout: <data_root>/<wnid>/*.jpg (the archive unpacks to imagenet-a/).
#
# A 1000-way classifier is scored on the 200 classes only: its logits are
# restricted to them before the arg-max (mmvan/analysis/data/
# imagenet_a_wnids.txt). Evaluate with
#   python tools/analysis_tools/robustness.py CONFIG CKPT \
#       --benchmark imagenet-a --data-root data/imagenet-a
# (tools/test.py with this dataset would compare 1000-way predictions with
# the folder indices 0-199).
dataset_type = 'CustomDataset'
data_root = 'data/imagenet-a'

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
