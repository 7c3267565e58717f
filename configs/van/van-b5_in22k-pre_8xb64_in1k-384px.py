# Fine-tune ImageNet-22k weights on ImageNet-1k at 384 (see the b4 config).
_base_ = './van-b4_in22k-pre_8xb64_in1k-384px.py'

model = dict(
    backbone=dict(
        arch='b5',
        drop_path_rate=0.3,
        init_cfg=dict(checkpoint='mmvan://van-b5_3rdparty_in22k')),
    head=dict(in_channels=768))
