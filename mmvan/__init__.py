# Copyright (c) mmvan contributors. All rights reserved.
"""mmvan: the Visual Attention Network family for OpenMMLab 2.0."""
from .utils.atomic import patch_mmengine_writes
from .utils.checkpoint import setup_safe_loading
from .utils.config_path import register_config_package
from .utils.quiet import quiet_init_report
from .version import __version__, version_info
from .zoo.loader import register_schemes

# mmengine's own checkpoints load with torch's safe loader still on.
setup_safe_loading()
# Checkpoints and last_checkpoint are written atomically (no half-written
# file after a crash or a full disk).
patch_mmengine_writes()
# ``mmvan://<name>`` and cached, checked http(s) downloads in every
# mmengine checkpoint load (load_from, init_cfg of any model).
register_schemes()

# The per-parameter init report goes to log files, not the console.
quiet_init_report()

# ``_base_ = 'mmvan::van/van-b0_8xb128_in1k.py'`` in any config.
register_config_package()

__all__ = ['__version__', 'version_info']
