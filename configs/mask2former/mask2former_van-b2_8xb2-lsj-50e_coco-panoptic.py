# Mask2Former with a VAN-b2 backbone on COCO panoptic (things + stuff),
# 100 queries, large-scale jitter 1024x1024, 50 epochs (368,750 iterations
# at a total batch of 16), AdamW lr 1e-4, weight decay 0.05, the backbone at
# 0.1x lr: mmdet's Mask2Former recipe with the backbone swapped, as the paper
# did. The backbone starts from the released ImageNet weights (a zoo name).
_base_ = 'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmvan.VAN',
        arch='b2',
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='mmvan://van-b2_3rdparty_in1k',
            prefix='backbone.')),
    panoptic_head=dict(in_channels=[64, 128, 320, 512], num_queries=100))

# Backbone at 0.1x lr; no weight decay on norms (global), layer scales,
# queries and level embeddings.
backbone_no_decay = dict(lr_mult=0.1, decay_mult=0.0)
embed_multi = dict(lr_mult=1.0, decay_mult=0.0)
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={
            'backbone': dict(lr_mult=0.1, decay_mult=1.0),
            '.layer_scale_': backbone_no_decay,
            'query_embed': embed_multi,
            'query_feat': embed_multi,
            'level_embed': embed_multi,
        },
        norm_decay_mult=0.0))

# 8 GPUs x 2 images; --auto-scale-lr scales the lr to your batch.
train_dataloader = dict(batch_size=2)
auto_scale_lr = dict(enable=False, base_batch_size=16)
