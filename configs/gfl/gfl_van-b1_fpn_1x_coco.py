_base_ = './gfl_van-b0_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        arch='b1',
        drop_path_rate=0.1,
        init_cfg=dict(checkpoint='mmvan://van-b1_3rdparty_in1k')),
    neck=dict(in_channels=[64, 128, 320, 512]))
