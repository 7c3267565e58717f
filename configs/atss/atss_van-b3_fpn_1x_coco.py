_base_ = './atss_van-b0_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        arch='b3',
        drop_path_rate=0.2,
        init_cfg=dict(checkpoint='mmvan://van-b3_3rdparty_in1k')),
    neck=dict(in_channels=[64, 128, 320, 512]))
