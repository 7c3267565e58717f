# Copyright (c) mmvan contributors. All rights reserved.
"""Deployment backends: the folded VAN exported to ONNX and run by the ONNX
Runtime or OpenVINO runtime, cached next to its checkpoint and checked
against PyTorch on real images (see :func:`mmvan.apis.init_model`'s
``backend``).

- :mod:`~mmvan.backends.runtimes`: the runtimes, and the choice among them;
- :mod:`~mmvan.backends.export`: ONNX export and the cache of exported files;
- :mod:`~mmvan.backends.check`: the check on the images shipped with mmvan;
- :mod:`~mmvan.backends.predictors`: an exported part as a tensor function;
- :mod:`~mmvan.backends.wrapper`: the module that runs it inside the model;
- :mod:`~mmvan.backends.build`: the backend model, checked.
"""
from .build import (build_backend_model, deploy_model, make_predictor,
                    module_predictor)
from .check import (TOLERANCE, BackendCheckError, check_images, check_inputs,
                    compare)
from .export import (ExportCache, checkpoint_sha256, export_file, export_onnx,
                     fold_for_export)
from .predictors import RuntimePredictor, TorchPredictor
from .quantize import quantize_int8
from .runtimes import (AUTO_ORDER, BACKENDS, PRECISIONS, RUNTIMES,
                       BackendNotInstalledError, BackendUnsupportedError,
                       OnnxRuntime, OpenVINORuntime, Runtime, check_request,
                       get_runtime, installed_backends, load_runtime,
                       native_bf16, pick_backend)
from .wrapper import BackendModule, backend_module, exported_part

__all__ = [
    'AUTO_ORDER', 'BACKENDS', 'PRECISIONS', 'RUNTIMES',
    'BackendNotInstalledError', 'BackendUnsupportedError', 'OnnxRuntime',
    'OpenVINORuntime', 'Runtime', 'check_request', 'get_runtime',
    'installed_backends', 'load_runtime', 'native_bf16', 'pick_backend',
    'ExportCache', 'checkpoint_sha256', 'export_file', 'export_onnx',
    'fold_for_export', 'quantize_int8', 'TOLERANCE', 'BackendCheckError',
    'check_images', 'check_inputs', 'compare', 'RuntimePredictor',
    'TorchPredictor', 'BackendModule', 'backend_module', 'exported_part',
    'build_backend_model', 'deploy_model', 'make_predictor', 'module_predictor'
]
