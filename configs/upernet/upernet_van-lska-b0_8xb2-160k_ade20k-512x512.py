# UperNet with a VAN-LSKA (k = 23) backbone.
_base_ = './upernet_van-b0_8xb2-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        arch='b0',
        attention='lska',
        kernel_size=23,
        init_cfg=dict(checkpoint='mmvan://van-lska-b0_3rdparty_in1k')),
    decode_head=dict(in_channels=[32, 64, 160, 256]),
    auxiliary_head=dict(in_channels=160))
