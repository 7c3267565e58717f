# Fine-tune ImageNet-22k weights on ImageNet-1k at 224. Convert the 22k
# checkpoint first (tools/model_converters/van2mmvan.py --task backbone) and
# point the backbone's init_cfg at it.
_base_ = [
    '../_base_/models/van/van_classifier.py',
    '../_base_/datasets/imagenet_bs128_van_224.py',
    '../_base_/schedules/imagenet_bs512_adamw_van_ft.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(
        arch='b6',
        drop_path_rate=0.5,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/van-b6_in22k_backbone.pth',
            prefix='backbone.')),
    head=dict(in_channels=768),
    # no Mixup / CutMix when fine-tuning
    train_cfg=dict(_delete_=True))
train_dataloader = dict(batch_size=64)
val_dataloader = dict(batch_size=64)
test_dataloader = dict(batch_size=64)
