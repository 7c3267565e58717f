# Copyright (c) mmvan contributors. All rights reserved.
from .deploy import DeployHook, fuse_model
from .fast import optimize_for_inference
from .inference import inference_model, init_model, load_image, task_of
from .model_zoo import get_model, list_models

__all__ = [
    'DeployHook', 'fuse_model', 'optimize_for_inference', 'init_model',
    'inference_model', 'load_image', 'task_of', 'get_model', 'list_models'
]
