# SimpleBaseline + a narrow VAN trained from scratch on mmvan's COCO-keypoints-
# format stick figures (data/demo_pose: 17 COCO keypoints per person; made by
# tools/demo.py --task pose) with mmpose's real top-down pipeline (box
# jitter, half-body, flip; flip test) and the real COCO keypoint AP (OKS).
# A narrow VAN (LKA blocks as in b0, half the widths, fewer blocks; the
# depth-wise convolutions' backward pass is slow on CPUs), input 128x96 and
# 64-channel deconvolutions keep a run within minutes on a 2-core CPU.
_base_ = './td-hm_van-b2_8xb64-210e_coco-256x192.py'

data_root = 'data/demo_pose/'
codec = dict(
    type='MSRAHeatmap', input_size=(96, 128), heatmap_size=(24, 32), sigma=2)

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmvan.VAN',
        arch=dict(
            embed_dims=[16, 32, 64, 128],
            depths=[1, 1, 2, 1],
            mlp_ratios=[4, 4, 4, 4]),
        drop_path_rate=0.0,
        out_indices=(3, ),
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=None),
    head=dict(
        in_channels=128, deconv_out_channels=(64, 64, 64), decoder=codec))

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomHalfBody'),
    dict(type='RandomBBoxTransform'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs')
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='PackPoseInputs')
]
train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/person_keypoints_train.json',
        data_prefix=dict(img='train/'),
        pipeline=train_pipeline))
# Ground-truth person boxes (no detector results for this set).
val_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/person_keypoints_val.json',
        bbox_file=None,
        data_prefix=dict(img='val/'),
        pipeline=val_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root +
                     'annotations/person_keypoints_val.json')
test_evaluator = val_evaluator

max_epochs = 30
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
optim_wrapper = dict(optimizer=dict(lr=2e-3), clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=30, start_factor=0.01, by_epoch=False),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        eta_min=1e-5,
        by_epoch=True,
        begin=0,
        end=max_epochs)
]
auto_scale_lr = dict(base_batch_size=32)
default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(
        interval=5, max_keep_ckpts=1, save_best='coco/AP', rule='greater'))
custom_hooks = [dict(type='mmvan.EpochSeedHook')]
randomness = dict(seed=0)
