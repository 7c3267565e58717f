# Semantic FPN with a VAN-LSKA (k = 23) backbone: lr 1e-4, 80k iterations.
_base_ = './fpn_van-lska-b0_8xb4-80k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        arch='b1',
        init_cfg=dict(checkpoint='mmvan://van-lska-b1_3rdparty_in1k')),
    neck=dict(in_channels=[64, 128, 320, 512]))
