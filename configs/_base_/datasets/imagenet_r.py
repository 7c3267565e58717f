# ImageNet-R(endition) (Hendrycks et al., The Many Faces of Robustness,
# ICCV 2021, https://arxiv.org/abs/2006.16241): 30,000 renditions (art,
# cartoons, sketches, toys, ...) of 200 ImageNet-1k classes. Download:
# https://github.com/hendrycks/imagenet-r (README).
#
# Layout: <data_root>/<wnid>/*.jpg (the archive unpacks to imagenet-r/).
#
# A 1000-way classifier is scored on the 200 classes only: its logits are
# restricted to them before the arg-max (mmvan/analysis/data/
# imagenet_r_wnids.txt). Evaluate with
#   python tools/analysis_tools/robustness.py CONFIG CKPT \
#       --benchmark imagenet-r --data-root data/imagenet-r
# (tools/test.py with this dataset would compare 1000-way predictions with
# the folder indices 0-199).
# The test transform and loader are ImageNet-A's; only the data differ.
_base_ = './imagenet_a.py'
data_root = 'data/imagenet-r'
test_dataloader = dict(dataset=dict(data_root=data_root))
