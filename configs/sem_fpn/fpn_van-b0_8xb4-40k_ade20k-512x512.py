# Semantic FPN with a VAN-b0 backbone on ADE20K, 40k iterations, total batch
# 32 (8 GPUs x 4). The backbone starts from the released ImageNet weights.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py'
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmvan.VAN',
        arch='b0',
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        # LayerNorm eps of the VAN segmentation release.
        out_norm_cfg=dict(type='LN', eps=1e-5),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='mmvan://van-b0_3rdparty_in1k',
            prefix='backbone.')),
    neck=dict(in_channels=[32, 64, 160, 256], out_channels=256, num_outs=4),
    decode_head=dict(channels=128, num_classes=150))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
    clip_grad=None)
param_scheduler = [
    dict(
        type='PolyLR',
        power=0.9,
        eta_min=0.0,
        begin=0,
        end=40000,
        by_epoch=False)
]
train_dataloader = dict(batch_size=4)
auto_scale_lr = dict(enable=False, base_batch_size=32)
