_base_ = [
    '../_base_/models/van/van_classifier.py',
    '../_base_/datasets/imagenet_bs128_van_224.py',
    '../_base_/schedules/imagenet_bs1024_adamw_van.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(arch='b2', drop_path_rate=0.1), head=dict(in_channels=512))
