# Copyright (c) mmvan contributors. All rights reserved.
from mmvan.datasets.loading import load_image
from mmvan.models.utils.deploy import fuse_model
from .fast import optimize_for_inference
from .inference import inference_model, init_model, task_of
from .model_zoo import get_model, list_models
from .setup import register_all_modules

__all__ = [
    'fuse_model', 'optimize_for_inference', 'init_model', 'inference_model',
    'load_image', 'task_of', 'get_model', 'list_models', 'register_all_modules'
]
