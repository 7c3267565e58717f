# Fine-grained classification on CUB-200-2011 (200 bird species, 5,994
# train / 5,794 test images) from the ImageNet-22k VAN-b4 weights, as in the
# paper's Table 16: only the classifier is replaced (200 classes). The paper
# fine-tunes with mmclassification and gives no recipe; this is
# mmpretrain's CUB recipe for pyramid transformers (Swin-L, 22k): resize
# 510, crop 384, flip; AdamW lr 5e-6 with weight decay 5e-4 at a total batch
# of 64 (8 GPUs x 8), 5 linear warm-up epochs and cosine to 100 epochs,
# gradient clipping at 5. Normalisation is VAN's (mean = std = 127.5).
_base_ = [
    '../_base_/models/van/van_classifier.py',
    'mmpretrain::_base_/datasets/cub_bs8_384.py',
    'mmpretrain::_base_/schedules/cub_bs64.py',
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
    head=dict(
        num_classes=200,
        in_channels=512,
        loss=dict(_delete_=True, type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )),
    # no Mixup / CutMix when fine-tuning
    train_cfg=dict(_delete_=True))
data_preprocessor = dict(
    num_classes=200, mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5])

optim_wrapper = dict(
    optimizer=dict(
        _delete_=True,
        type='AdamW',
        lr=5e-6,
        weight_decay=0.0005,
        eps=1e-8,
        betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={'.layer_scale_': dict(decay_mult=0.0)}),
    clip_grad=dict(max_norm=5.0))

default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3))
