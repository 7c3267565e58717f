# ImageNet-Sketch (Wang et al., Learning Robust Global Representations by
# Penalizing Local Predictive Power, NeurIPS 2019,
# https://arxiv.org/abs/1905.13549): 50,889 black-and-white sketches, about
# 50 for each of the 1000 ImageNet-1k classes. Download:
# https://github.com/HaohanWang/ImageNet-Sketch (README).
#
# Layout: <data_root>/<wnid>/*.JPEG (the archive unpacks to sketch/; the
# tool also finds the class folders one level down).
#
# Evaluate with
#   python tools/analysis_tools/robustness.py CONFIG CKPT \
#       --benchmark imagenet-sketch --data-root data/imagenet-sketch
# With all 1000 class folders present, the sorted folders are the
# ImageNet-1k indices, so this dataset also works with tools/test.py.
# The test transform and loader are ImageNet-A's; only the data differ.
_base_ = './imagenet_a.py'
data_root = 'data/imagenet-sketch'
test_dataloader = dict(dataset=dict(data_root=data_root))
