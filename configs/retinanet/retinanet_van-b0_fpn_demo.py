# RetinaNet + VAN-b0 trained from scratch on mmvan's 3-class shapes set
# (data/demo_det, COCO format; made by mmvan.datasets.make_detection_demo or
# tools/demo.py --task det). A narrower head (128 channels, 2 convs) keeps a
# run within minutes on a 2-core CPU; the evaluation is the real COCO bbox
# metric.
_base_ = './retinanet_van-b0_fpn_1x_coco.py'

data_root = 'data/demo_det/'
metainfo = dict(classes=('square', 'disc', 'triangle'))

model = dict(
    backbone=dict(
        drop_path_rate=0.0,
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=None),
    neck=dict(out_channels=128),
    bbox_head=dict(
        num_classes=3, in_channels=128, feat_channels=128, stacked_convs=2))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(160, 160), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(160, 160), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=8),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    ann_file=data_root + 'annotations/instances_val.json', metric='bbox')
test_evaluator = val_evaluator

max_epochs = 24
train_cfg = dict(max_epochs=max_epochs, val_interval=4)
optim_wrapper = dict(
    optimizer=dict(lr=1e-3, weight_decay=0.05), clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=60),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        eta_min=1e-5,
        by_epoch=True,
        begin=0,
        end=max_epochs)
]
auto_scale_lr = dict(base_batch_size=8)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=4, max_keep_ckpts=1, save_best='auto'))
custom_hooks = [dict(type='mmvan.EpochSeedHook')]
randomness = dict(seed=0)
