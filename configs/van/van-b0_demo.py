# VAN-b0 trained from scratch on mmvan's 5-class texture set (made by
# `make demo` / tools/demo.py under data/demo_cls, ImageNet's on-disk layout)
# with mmpretrain's real dataset, pipeline and Runner. About 4 minutes on a
# 2-core CPU.
_base_ = './van-b0_8xb128_in1k.py'

data_root = 'data/demo_cls'
classes = ('horizontal_stripes', 'vertical_stripes', 'diagonal_stripes',
           'checkerboard', 'dots')

model = dict(
    backbone=dict(drop_path_rate=0.0),
    head=dict(num_classes=5, topk=(1, )),
    train_cfg=dict(_delete_=True))  # no Mixup / CutMix on 600 images
data_preprocessor = dict(num_classes=5)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=64,
        crop_ratio_range=(0.5, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge',
        scale=72,
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=64),
    dict(type='PackInputs'),
]

_dataset = dict(
    _delete_=True,
    type='CustomDataset',
    data_root=data_root,
    classes=classes,
    with_label=True)
train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=False,
    dataset=dict(
        **_dataset,
        ann_file='meta/train.txt',
        data_prefix='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=1,
    persistent_workers=False,
    dataset=dict(
        **_dataset,
        ann_file='meta/val.txt',
        data_prefix='val',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

max_epochs = 12
optim_wrapper = dict(optimizer=dict(lr=2e-3), clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - 1,
        eta_min=1e-5,
        by_epoch=True,
        begin=1,
        end=max_epochs,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
auto_scale_lr = dict(base_batch_size=32)

default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=2, max_keep_ckpts=1, save_best='auto'),
    visualization=dict(type='VisualizationHook', enable=True, interval=50))
custom_hooks = [dict(type='mmvan.EpochSeedHook')]
vis_backends = [
    dict(type='LocalVisBackend'),
    dict(type='TensorboardVisBackend')
]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
randomness = dict(seed=0, deterministic=False)
