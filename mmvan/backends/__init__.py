# Copyright (c) mmvan contributors. All rights reserved.
"""Deployment backends: the folded VAN exported to ONNX and run by ONNX
Runtime or OpenVINO, cached next to its checkpoint and checked against
PyTorch on real images (see :func:`mmvan.apis.init_model`'s ``backend``)."""
from .engines import (AUTO_ORDER, BACKENDS, ENGINES, PRECISIONS,
                      BackendNotInstalledError, BackendUnsupportedError,
                      OnnxRuntimeEngine, OpenVINOEngine, get_engine,
                      installed_backends, load_engine, native_bf16,
                      pick_backend)
from .export import (ExportCache, checkpoint_sha256, export_onnx,
                     fold_for_export)
from .model import (TOLERANCE, BackendCheckError, EngineModule,
                    build_backend_model, check_inputs, check_request,
                    demo_images, deploy_model, engine_module, exported_part)

__all__ = [
    'AUTO_ORDER', 'BACKENDS', 'ENGINES', 'PRECISIONS',
    'BackendNotInstalledError', 'BackendUnsupportedError', 'OnnxRuntimeEngine',
    'OpenVINOEngine', 'get_engine', 'installed_backends', 'load_engine',
    'native_bf16', 'pick_backend', 'ExportCache', 'checkpoint_sha256',
    'export_onnx', 'fold_for_export', 'TOLERANCE', 'BackendCheckError',
    'EngineModule', 'build_backend_model', 'check_inputs', 'check_request',
    'demo_images', 'deploy_model', 'engine_module', 'exported_part'
]
