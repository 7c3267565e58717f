# The official VAN schedule: AdamW, lr 1e-3 at a total batch of 1024, weight
# decay 0.05 with none on norms, biases and layer scales, 5 warm-up epochs
# from 1e-6, cosine to 1e-5, 310 epochs.
optim_wrapper = dict(
    optimizer=dict(
        type='AdamW', lr=1e-3, weight_decay=0.05, eps=1e-8,
        betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={'.layer_scale_': dict(decay_mult=0.0)}),
)

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=305,
        eta_min=1e-5,
        by_epoch=True,
        begin=5,
        end=310,
        convert_to_iter_based=True)
]

train_cfg = dict(by_epoch=True, max_epochs=310, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# The learning rate above is for 8 GPUs x 128 images; --auto-scale-lr scales
# it linearly to the actual total batch.
auto_scale_lr = dict(base_batch_size=1024)
