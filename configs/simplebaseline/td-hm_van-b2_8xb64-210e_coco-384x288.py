# SimpleBaseline, VAN-b2, COCO keypoints at 384x288 (heatmaps 96x72,
# sigma 3), otherwise as the 256x192 config.
_base_ = 'mmpose::body_2d_keypoint/topdown_heatmap/coco/' \
    'td-hm_res50_8xb64-210e_coco-384x288.py'

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
