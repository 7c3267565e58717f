# Mask2Former + a narrow VAN trained from scratch on mmvan's COCO-panoptic-
# format shapes set (data/demo_pano: square, disc, triangle as things; sky
# and ground as stuff; made by tools/demo.py --task pano). The recipe's
# structure is kept (pixel decoder with deformable attention, masked
# attention decoder, Hungarian matching on sampled points, LSJ-style
# augmentation); image size (96x96), widths, depths, queries and points
# are shrunk so that a run takes minutes on a 2-core CPU. Evaluation is the
# real COCO panoptic quality (PQ).
_base_ = './mask2former_van-b2_8xb2-lsj-50e_coco-panoptic.py'

data_root = 'data/demo_pano/'
image_size = (96, 96)
thing_classes = ('square', 'disc', 'triangle')
stuff_classes = ('sky', 'ground')
metainfo = dict(
    classes=thing_classes + stuff_classes,
    thing_classes=thing_classes,
    stuff_classes=stuff_classes,
    palette=[(220, 20, 60), (0, 160, 80), (250, 170, 30), (70, 130, 180),
             (150, 110, 60)])
num_things_classes = 3
num_stuff_classes = 2
num_classes = num_things_classes + num_stuff_classes
feat = 64

model = dict(
    data_preprocessor=dict(batch_augments=[
        dict(
            type='BatchFixedSizePad',
            size=image_size,
            img_pad_value=0,
            pad_mask=True,
            mask_pad_value=0,
            pad_seg=True,
            seg_pad_value=255)
    ]),
    # A narrow VAN (LKA blocks as in b0, a quarter of the widths and fewer
    # blocks): the depth-wise convolutions' backward pass is slow on CPUs.
    backbone=dict(
        _delete_=True,
        type='mmvan.VAN',
        arch=dict(
            embed_dims=[16, 32, 64, 128],
            depths=[1, 1, 2, 1],
            mlp_ratios=[4, 4, 4, 4]),
        drop_path_rate=0.0,
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=None),
    panoptic_head=dict(
        in_channels=[16, 32, 64, 128],
        feat_channels=feat,
        out_channels=feat,
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        num_queries=20,
        pixel_decoder=dict(
            norm_cfg=dict(type='GN', num_groups=8),
            encoder=dict(
                num_layers=2,
                layer_cfg=dict(
                    self_attn_cfg=dict(embed_dims=feat, num_heads=4),
                    ffn_cfg=dict(
                        embed_dims=feat, feedforward_channels=4 * feat))),
            positional_encoding=dict(num_feats=feat // 2)),
        positional_encoding=dict(num_feats=feat // 2),
        transformer_decoder=dict(
            num_layers=3,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=feat, num_heads=4),
                cross_attn_cfg=dict(embed_dims=feat, num_heads=4),
                ffn_cfg=dict(embed_dims=feat, feedforward_channels=4 * feat))),
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes),
    train_cfg=dict(num_points=1024),
    test_cfg=dict(max_per_image=20))

train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(
        type='LoadPanopticAnnotations',
        with_bbox=True,
        with_mask=True,
        with_seg=True),
    dict(type='RandomFlip', prob=0.5),
    # scale jitter, milder than the recipe's 0.1-2.0 on 128-pixel images
    dict(
        type='RandomResize',
        scale=image_size,
        ratio_range=(0.75, 1.25),
        keep_ratio=True),
    dict(
        type='RandomCrop',
        crop_size=image_size,
        crop_type='absolute',
        recompute_bbox=True,
        allow_negative_crop=True),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadPanopticAnnotations'),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/panoptic_train.json',
        data_prefix=dict(img='train/', seg='annotations/panoptic_train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=8),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/panoptic_val.json',
        data_prefix=dict(img='val/', seg='annotations/panoptic_val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    _delete_=True,
    type='CocoPanopticMetric',
    ann_file=data_root + 'annotations/panoptic_val.json',
    seg_prefix=data_root + 'annotations/panoptic_val/',
    nproc=1)
test_evaluator = val_evaluator

# From scratch: the backbone at the full lr.
optim_wrapper = dict(
    optimizer=dict(lr=5e-4),
    paramwise_cfg=dict(
        custom_keys={
            'backbone': dict(lr_mult=1.0, decay_mult=1.0),
            '.layer_scale_': dict(lr_mult=1.0, decay_mult=0.0)
        }))
max_iters = 400
param_scheduler = dict(
    _delete_=True,
    type='MultiStepLR',
    begin=0,
    end=max_iters,
    by_epoch=False,
    milestones=[300, 370],
    gamma=0.1)
interval = 100
train_cfg = dict(
    max_iters=max_iters, val_interval=interval, dynamic_intervals=None)
auto_scale_lr = dict(base_batch_size=8)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(
        interval=interval,
        max_keep_ckpts=1,
        save_best='coco_panoptic/PQ',
        rule='greater'))
randomness = dict(seed=0)
