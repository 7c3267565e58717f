# Copyright (c) mmvan contributors. All rights reserved.
"""What large kernels do: effective receptive fields, Grad-CAM and the
robustness benchmarks (ImageNet-C, -A, -R, -Sketch, cue-conflict).

The command-line tools are ``tools/analysis_tools/erf.py``,
``tools/analysis_tools/vis_cam.py`` and
``tools/analysis_tools/robustness.py``; see ``docs/analysis.md``.
"""
from .erf import (ERF_THRESHOLDS, area_ratios, central_input_gradient,
                  effective_receptive_field, log_scaled)
from .robustness import (BENCHMARKS, IMAGENET_C_CORRUPTIONS, IMAGENET_C_EXTRA,
                         alexnet_errors, category_decisions,
                         imagenet_c_summary, imagenet_wnids, prediction_error,
                         shape_bias, subset_indices, subset_top1_error,
                         top1_predictions)

__all__ = [
    'ERF_THRESHOLDS', 'area_ratios', 'central_input_gradient',
    'effective_receptive_field', 'log_scaled', 'BENCHMARKS',
    'IMAGENET_C_CORRUPTIONS', 'IMAGENET_C_EXTRA', 'alexnet_errors',
    'category_decisions', 'imagenet_c_summary', 'imagenet_wnids',
    'prediction_error', 'shape_bias', 'subset_indices', 'subset_top1_error',
    'top1_predictions'
]
