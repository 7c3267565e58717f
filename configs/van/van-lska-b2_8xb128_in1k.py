# VAN with Large Separable Kernel Attention, k = 23. Another kernel size:
#   --cfg-options model.backbone.kernel_size=35   (7, 11, 23, 35, 41 or 53)
_base_ = [
    '../_base_/models/van/van_classifier.py',
    '../_base_/datasets/imagenet_bs128_van_224.py',
    '../_base_/schedules/imagenet_bs1024_adamw_van.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(
        arch='b2', attention='lska', kernel_size=23, drop_path_rate=0.1),
    head=dict(in_channels=512))
