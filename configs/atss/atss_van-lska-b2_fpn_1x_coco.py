# VAN-LSKA (k = 23) backbone; another k: model.backbone.kernel_size=...
_base_ = './atss_van-b0_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        arch='b2',
        attention='lska',
        kernel_size=23,
        init_cfg=dict(checkpoint='mmvan://van-lska-b2_3rdparty_in1k')),
    neck=dict(in_channels=[64, 128, 320, 512]))
