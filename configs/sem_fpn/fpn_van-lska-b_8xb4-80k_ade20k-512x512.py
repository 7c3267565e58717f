# Semantic FPN with a VAN-LSKA (k = 23) backbone: lr 1e-4, 80k iterations.
_base_ = './fpn_van-lska-t_8xb4-80k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        arch='b2',
        init_cfg=dict(checkpoint='checkpoints/van-lska-b_in1k.pth')),
    neck=dict(in_channels=[64, 128, 320, 512]))
