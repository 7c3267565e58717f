# Cascade Mask R-CNN with a VAN-b0 backbone, 1x schedule on COCO. The box
# heads are the pyramid-backbone recipe of the paper's comparison (Swin,
# ConvNeXt): four shared 3x3 convolutions (SyncBN) and one fc per stage,
# class-specific GIoU box regression on decoded boxes. The backbone starts
# from the released ImageNet weights (a zoo name: downloaded, checked and
# converted on first use; see configs/van/README.md for mirrors).
_base_ = 'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py'

norm_cfg = dict(type='SyncBN', requires_grad=True)

box_head = dict(
    type='ConvFCBBoxHead',
    num_shared_convs=4,
    num_shared_fcs=1,
    in_channels=256,
    conv_out_channels=256,
    fc_out_channels=1024,
    roi_feat_size=7,
    num_classes=80,
    reg_class_agnostic=False,
    reg_decoded_bbox=True,
    norm_cfg=norm_cfg,
    loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
    loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
# The three stages differ only in the box coder's target stds.
stage_stds = [[0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1],
              [0.033, 0.033, 0.067, 0.067]]

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmvan.VAN',
        arch='b0',
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        norm_cfg=norm_cfg,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='mmvan://van-b0_3rdparty_in1k',
            prefix='backbone.')),
    neck=dict(in_channels=[32, 64, 160, 256]),
    roi_head=dict(bbox_head=[
        dict(
            box_head,
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder',
                target_means=[0., 0., 0., 0.],
                target_stds=stds)) for stds in stage_stds
    ]))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05))

# 8 GPUs x 2 images; --auto-scale-lr scales the lr to your batch.
train_dataloader = dict(batch_size=2)
auto_scale_lr = dict(base_batch_size=16)
