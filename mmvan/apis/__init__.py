# Copyright (c) mmvan contributors. All rights reserved.
from .deploy import DeployHook, fuse_model

__all__ = ['DeployHook', 'fuse_model']
