# UperNet with a VAN-b0 backbone on ADE20K, 160k iterations, total batch 16
# (8 GPUs x 2). Multi-scale + flip test: tools/test.py ... --tta.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py'
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
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        out_norm_cfg=dict(type='LN', eps=1e-5),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='mmvan://van-b0_3rdparty_in1k',
            prefix='backbone.')),
    decode_head=dict(
        in_channels=[32, 64, 160, 256],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        num_classes=150),
    auxiliary_head=dict(
        in_channels=160, in_index=2, channels=256, num_classes=150))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        custom_keys={'.layer_scale_': dict(decay_mult=0.0)}))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(
        type='PolyLR',
        power=1.0,
        eta_min=0.0,
        begin=1500,
        end=160000,
        by_epoch=False)
]
train_dataloader = dict(batch_size=2)
auto_scale_lr = dict(enable=False, base_batch_size=16)
