# Copyright (c) mmvan contributors. All rights reserved.
"""Measuring models: what large kernels do (effective receptive fields,
Grad-CAM, attention maps, the robustness benchmarks ImageNet-C, -A, -R,
-Sketch and cue-conflict), what they cost (:mod:`.flops`, :mod:`.speed`,
:mod:`.train_speed`, :mod:`.kernel_scaling`, :mod:`.kernel_bandwidth`) and
checks of data and released weights (:mod:`.dataset_check`,
:mod:`.zoo_validation`).

Each tool in ``tools/analysis_tools/`` and ``tools/visualization/`` is
argument parsing and one call into these modules; see ``docs/analysis.md``
and ``docs/benchmark.md``. Only the ERF and robustness helpers are imported
here: the others are imported by name, so that ``import mmvan.analysis``
stays light (the kernel-scaling workers start from it).
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
