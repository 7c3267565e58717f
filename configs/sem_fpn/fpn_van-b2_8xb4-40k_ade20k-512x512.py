_base_ = './fpn_van-b0_8xb4-40k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        arch='b2',
        drop_path_rate=0.2,
        init_cfg=dict(checkpoint='mmvan://van-b2_3rdparty_in1k')),
    neck=dict(in_channels=[64, 128, 320, 512]))
