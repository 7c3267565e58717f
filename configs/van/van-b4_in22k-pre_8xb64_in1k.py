# Fine-tune ImageNet-22k weights on ImageNet-1k at 224. The backbone starts
# from the released 22k weights (zoo name; the 21k-class head is not used).
_base_ = [
    '../_base_/models/van/van_classifier.py',
    '../_base_/datasets/imagenet_bs128_van_224.py',
    '../_base_/schedules/imagenet_bs512_adamw_van_ft.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(
        arch='b4',
        drop_path_rate=0.2,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='mmvan://van-b4_3rdparty_in22k',
            prefix='backbone.')),
    head=dict(in_channels=512),
    # no Mixup / CutMix when fine-tuning
    train_cfg=dict(_delete_=True))
train_dataloader = dict(batch_size=64)
val_dataloader = dict(batch_size=64)
test_dataloader = dict(batch_size=64)
