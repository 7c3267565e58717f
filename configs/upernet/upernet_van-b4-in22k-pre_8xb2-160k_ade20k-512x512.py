_base_ = './upernet_van-b0_8xb2-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        arch='b4',
        drop_path_rate=0.4,
        init_cfg=dict(checkpoint='mmvan://van-b4_3rdparty_in22k')),
    decode_head=dict(in_channels=[64, 128, 320, 512]),
    auxiliary_head=dict(in_channels=320))
