_base_ = './upernet_van-b0_8xb2-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        arch='b2',
        drop_path_rate=0.1,
        init_cfg=dict(checkpoint='checkpoints/van-b2_in1k.pth')),
    decode_head=dict(in_channels=[64, 128, 320, 512]),
    auxiliary_head=dict(in_channels=320))
