# Copyright (c) mmvan contributors. All rights reserved.
from .checkpoint import (CheckpointError, mmengine_safe_globals,
                         register_safe_globals, safe_torch_load,
                         setup_safe_loading)
from .collect_env import collect_env

__all__ = [
    'CheckpointError', 'mmengine_safe_globals', 'register_safe_globals',
    'safe_torch_load', 'setup_safe_loading', 'collect_env'
]
