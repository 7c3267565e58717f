# The CUB-200 fine-grained recipe (van-b4_in22k-pre_8xb8_cub-384px.py) on
# mmvan's 4-class CUB-layout set of "birds" that differ only in the beak's
# colour and a bar on the wing (data/demo_cub; made by tools/demo.py --task
# cub): mmpretrain's real CUB dataset, a VAN-b0 from scratch (no weights can
# be downloaded here) at 64x64, so with a higher lr than fine-tuning uses.
_base_ = './van-b4_in22k-pre_8xb8_cub-384px.py'

data_root = 'data/demo_cub'
classes = ('001.Yellowbill_Plain', '002.Yellowbill_Barred',
           '003.Blackbill_Plain', '004.Blackbill_Barred')

model = dict(
    backbone=dict(arch='b0', drop_path_rate=0.0, init_cfg=None),
    head=dict(num_classes=4, in_channels=256))
data_preprocessor = dict(num_classes=4)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=72),
    dict(type='RandomCrop', crop_size=64),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=72),
    dict(type='CenterCrop', crop_size=64),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        classes=classes,
        split='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        classes=classes,
        split='test',
        pipeline=test_pipeline))
test_dataloader = val_dataloader

max_epochs = 30
optim_wrapper = dict(optimizer=dict(lr=2e-3, weight_decay=0.05))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - 1,
        eta_min=1e-5,
        by_epoch=True,
        begin=1,
        end=max_epochs,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
auto_scale_lr = dict(base_batch_size=32)
default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=5, max_keep_ckpts=1, save_best='auto'))
custom_hooks = [dict(type='mmvan.EpochSeedHook')]
randomness = dict(seed=0)
