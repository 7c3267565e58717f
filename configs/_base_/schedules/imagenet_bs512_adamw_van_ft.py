# Fine-tuning ImageNet-22k weights on ImageNet-1k: AdamW lr 5e-5 at a total
# batch of 512, weight decay 1e-8, 30 epochs, cosine.
optim_wrapper = dict(
    optimizer=dict(
        type='AdamW', lr=5e-5, weight_decay=1e-8, eps=1e-8,
        betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={'.layer_scale_': dict(decay_mult=0.0)}),
)
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=30,
        eta_min=1e-6,
        by_epoch=True,
        begin=0,
        end=30,
        convert_to_iter_based=True)
]
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=512)
