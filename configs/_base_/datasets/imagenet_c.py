# ImageNet-C (Hendrycks & Dietterich, ICLR 2019,
# https://arxiv.org/abs/1903.12261): the 50,000 ImageNet-1k validation
# images under 15 standard corruptions and 4 extra ones (speckle_noise,
# gaussian_blur, spatter, saturate) at 5 severities each, stored already
# resized and centre-cropped to 224 x 224. Download links:
# https://github.com/hendrycks/robustness (README, "Download ImageNet-C").
#
# Layout: <data_root>/<corruption>/<severity 1-5>/<wnid>/*.JPEG
#
# Evaluate with tools/analysis_tools/robustness.py (top-1 error per
# corruption and severity, CE normalised by AlexNet's errors, mCE over the
# 15 standard corruptions and over all 19 as the LSKA paper reports it):
#   python tools/analysis_tools/robustness.py CONFIG CKPT \
#       --benchmark imagenet-c --data-root data/imagenet-c
# The tool labels each image by its WordNet-id folder and points this
# dataset at one corruption/severity folder at a time.
dataset_type = 'CustomDataset'
data_root = 'data/imagenet-c'
corruptions = [
    'gaussian_noise', 'shot_noise', 'impulse_noise', 'defocus_blur',
    'glass_blur', 'motion_blur', 'zoom_blur', 'snow', 'frost', 'fog',
    'brightness', 'contrast', 'elastic_transform', 'pixelate',
    'jpeg_compression', 'speckle_noise', 'gaussian_blur', 'spatter', 'saturate'
]
severities = [1, 2, 3, 4, 5]

# The images are the benchmark's 224 x 224 crops: evaluated as they are
# (the centre crop only guards against other sizes), as in the benchmark's
# own evaluation.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix='gaussian_noise/1',
        with_label=True,
        pipeline=test_pipeline))
test_evaluator = dict(type='Accuracy', topk=(1, ))
