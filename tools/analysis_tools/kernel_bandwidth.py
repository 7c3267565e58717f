# Copyright (c) mmvan contributors. All rights reserved.
"""Share of the GPU's memory bandwidth that each depth-wise kernel of VAN
reaches (forward, input and weight gradients; the fused MLP op), Triton
against PyTorch, at VAN-b2 stage-1 and stage-3 shapes; the GPU's name
first. Needs a CUDA GPU (see :mod:`mmvan.analysis.kernel_bandwidth`).

    python tools/analysis_tools/kernel_bandwidth.py --batch-size 32 \\
        --dtypes fp32 bf16
"""
import os.path as osp
import sys

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmvan.analysis.kernel_bandwidth import main  # noqa: E402
from mmvan import cli  # noqa: E402

if __name__ == '__main__':
    cli.run_cli(main)
