# SimpleBaseline (top-down heatmap) with a VAN-b2 backbone on COCO
# keypoints at 256x192: three 4x4 deconvolutions (256 channels) on the last
# stage, MSE on Gaussian heatmaps, Adam lr 5e-4 at 8 GPUs x 64, 210 epochs
# with steps at 170 and 200; flip test. mmpose's ResNet recipe with the
# backbone swapped. The backbone starts from the released ImageNet weights.
_base_ = 'mmpose::body_2d_keypoint/topdown_heatmap/coco/' \
    'td-hm_res50_8xb64-210e_coco-256x192.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmvan.VAN',
        arch='b2',
        drop_path_rate=0.1,
        out_indices=(3, ),
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='mmvan://van-b2_3rdparty_in1k',
            prefix='backbone.')),
    head=dict(in_channels=512))
