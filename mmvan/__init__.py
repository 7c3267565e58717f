# Copyright (c) mmvan contributors. All rights reserved.
"""mmvan: the Visual Attention Network family for OpenMMLab 2.0.

Layers, bottom to top; a module imports its own layer and those below it,
at the head of the file, and no import cycle exists:

    utils → ops → models → converters → zoo → datasets →
    backends → apis → engine → analysis → cli

- base: this package's root, ``mmvan.version`` and ``mmvan.registry``
  (mmengine's registries with mmvan's scope), below every layer.
- utils: typed errors, atomic file writes, console and log output, config
  reading.
- ops: GPU kernels and their reference implementations.
- models: the VAN family, its layers, folding into the deploy form.
- converters: checkpoint formats as key tables, and converting between them.
- zoo: checkpoints (read, check, convert on load, save), the model index and
  downloads.
- datasets: transforms, image loading, demo data.
- backends: export and the ONNX Runtime / OpenVINO inference backends.
- apis: ``init_model``, ``inference_model``, ``get_model`` and
  ``register_all_modules``, the one call that switches on mmvan's global
  extension points.
- engine: the Runner, hooks, loops and optimizer wrappers.
- analysis: FLOPs, speed, effective receptive field, CAM, robustness.
- cli: what the tools share (``mmvan.cli``) and ``mmvan.testing``.

Importing mmvan changes nothing outside it; ``mmvan.apis.register_all_modules``
switches on mmvan's extension points of mmengine and torch (the tools call it
through ``mmvan.cli.run_cli``).
"""
from .version import __version__, version_info

__all__ = ['__version__', 'version_info']
