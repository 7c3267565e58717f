# Mask2Former, VAN-b6 pre-trained on ImageNet-22k, 200 queries (the paper's
# large setting), otherwise as the VAN-b2 config: 50 epochs at a total batch
# of 16, AdamW lr 1e-4.
_base_ = './mask2former_van-b2_8xb2-lsj-50e_coco-panoptic.py'

model = dict(
    backbone=dict(
        arch='b6', init_cfg=dict(checkpoint='mmvan://van-b6_3rdparty_in22k')),
    panoptic_head=dict(in_channels=[96, 192, 384, 768], num_queries=200),
    # up to 200 instances per image, one per query
    test_cfg=dict(max_per_image=200))
