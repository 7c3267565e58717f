# VAN-LSKA (k = 23) backbone; another k: model.backbone.kernel_size=...
_base_ = './mask-rcnn_van-b0_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        arch='b0',
        attention='lska',
        kernel_size=23,
        init_cfg=dict(checkpoint='checkpoints/van-lska-t_in1k.pth')),
    neck=dict(in_channels=[32, 64, 160, 256]))
