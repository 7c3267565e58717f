# GFL (Generalized Focal Loss) with a VAN-b0 backbone, 1x schedule on COCO:
# FPN over stages 2-4 with two extra levels, as in mmdet's ResNet recipe.
# The backbone starts from the released ImageNet weights (a zoo name:
# downloaded, checked and converted on first use; see configs/van/README.md
# for mirrors).
_base_ = 'mmdet::gfl/gfl_r50_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmvan.VAN',
        arch='b0',
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='mmvan://van-b0_3rdparty_in1k',
            prefix='backbone.')),
    neck=dict(in_channels=[32, 64, 160, 256]))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05))

# 8 GPUs x 2 images; --auto-scale-lr scales the lr to your batch.
train_dataloader = dict(batch_size=2)
auto_scale_lr = dict(base_batch_size=16)
