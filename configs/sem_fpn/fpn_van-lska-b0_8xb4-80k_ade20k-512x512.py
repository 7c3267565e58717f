# Semantic FPN with a VAN-LSKA (k = 23) backbone: lr 1e-4, 80k iterations.
_base_ = './fpn_van-b0_8xb4-40k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        arch='b0',
        attention='lska',
        kernel_size=23,
        init_cfg=dict(checkpoint='mmvan://van-lska-b0_3rdparty_in1k')),
    neck=dict(in_channels=[32, 64, 160, 256]))
optim_wrapper = dict(optimizer=dict(lr=1e-4))
param_scheduler = [
    dict(
        type='PolyLR',
        power=0.9,
        eta_min=0.0,
        begin=0,
        end=80000,
        by_epoch=False)
]
train_cfg = dict(max_iters=80000, val_interval=8000)
default_hooks = dict(checkpoint=dict(interval=8000))
