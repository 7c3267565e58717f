# Copyright (c) mmvan contributors. All rights reserved.
"""The GPU measurements stop with one clear error where there is no GPU,
and train_speed.py's contenders and precisions are laid out as asked."""
import os
import subprocess
import sys
from unittest import mock

import pytest
import torch

from mmvan.analysis import train_speed
from mmvan.models.backbones.van import VANBlock
from mmvan.registry import MODELS

CONFIG = 'configs/van/van-b0_8xb128_in1k.py'
# Any machine, as one without a GPU.
NO_GPU = dict(CUDA_VISIBLE_DEVICES='')


@pytest.mark.slow
def test_gpu_check_script_needs_a_gpu(root):
    out = subprocess.run(
        ['bash', 'tools/analysis_tools/gpu_check.sh', sys.executable],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS='1', **NO_GPU))
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stdout == ''
    assert 'Traceback' not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        'error: the kernel bandwidth check needs a CUDA GPU, and this '
        'machine has none (torch.cuda.is_available() is False).')


@pytest.mark.slow
@pytest.mark.parametrize('args', [
    [
        'tools/analysis_tools/benchmark.py', CONFIG, '--train', '--device',
        'cuda'
    ],
    ['tools/analysis_tools/train_speed.py', CONFIG, '--device', 'cuda'],
    [
        'tools/analysis_tools/benchmark.py', CONFIG, '--device', 'cuda',
        '--deploy', '--compare', 'mmpretrain'
    ],
])
def test_cuda_device_without_gpu_is_an_error(run_tool, args):
    out = run_tool(args, env=NO_GPU, check=False, timeout=300)
    assert out.returncode == 2
    assert 'Traceback' not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        f'error: --device cuda needs a CUDA GPU, and this machine has none'
        f'{"; use --device cpu." if "benchmark" in args[0] else "."}')


def test_train_speed_contenders_and_precisions(tool):
    args = tool('train_speed').parse_args(
        [CONFIG, '--precisions', 'fp32', 'amp'])
    runs = train_speed.run_labels(['mmvan', 'mmvan-torch', 'mmpretrain'],
                                  args.precisions)
    assert runs == {
        'mmvan fp32': ('mmvan', False),
        'mmvan-torch fp32': ('mmvan-torch', False),
        'mmpretrain fp32': ('mmpretrain', False),
        'mmvan amp': ('mmvan', True),
        'mmvan-torch amp': ('mmvan-torch', True),
        'mmpretrain amp': ('mmpretrain', True),
    }
    # One precision: plain names, as before.
    assert train_speed.run_labels(['mmvan'], ['amp']) == {
        'mmvan': ('mmvan', True)
    }
    assert tool('train_speed').parse_args([CONFIG,
                                           '--amp']).precisions == ['amp']
    with pytest.raises(SystemExit):
        tool('train_speed').parse_args(
            [CONFIG, '--amp', '--precisions', 'fp32'])
    rate = {'mmvan fp32': 100., 'mmvan amp': 130., 'mmpretrain fp32': 50.}
    assert train_speed.amp_ratios(runs, rate) == ['amp / fp32: mmvan 1.30x']
    assert train_speed.label_of(runs, 'mmpretrain', True) == 'mmpretrain amp'


def test_train_speed_torch_contender_config(root, tmp_path):
    cfg = train_speed.training_config(f'{root}/{CONFIG}', 'mmvan-torch', 4,
                                      str(tmp_path), str(tmp_path), False)
    assert cfg.model.backbone.conv_impl == 'torch'
    assert cfg.train_fast_path.layout == 'auto'


def test_train_speed_channels_last_contender(root, tmp_path):
    cfg = train_speed.training_config(f'{root}/{CONFIG}', 'mmvan-cl', 4,
                                      str(tmp_path), str(tmp_path), False)
    assert cfg.train_fast_path.layout == 'channels_last'
    assert cfg.model.backbone.get('conv_impl', 'auto') == 'auto'


def test_train_speed_unfused_contender_builds_unfused_van(root, tmp_path):
    cfg = train_speed.training_config(f'{root}/{CONFIG}', 'mmvan-unfused', 4,
                                      str(tmp_path), str(tmp_path), False)
    assert cfg.train_fast_path.layout == 'auto'
    van = MODELS.build(cfg.model.backbone)
    assert van.conv_impl == 'auto'
    blocks = [m for m in van.modules() if isinstance(m, VANBlock)]
    assert blocks and not any(b.fused_residual or b.mlp.fused_act
                              for b in blocks)


def test_train_speed_default_contenders(tool):
    train_speed_tool = tool('train_speed')
    with mock.patch.object(torch.cuda, 'is_available', return_value=False):
        assert train_speed_tool.parse_args([CONFIG]).contenders == [
            'mmvan', 'mmvan-plain', 'mmvan-cp', 'mmpretrain', 'mmpretrain-cl'
        ]
    with mock.patch.object(torch.cuda, 'is_available', return_value=True):
        contenders = train_speed_tool.parse_args([CONFIG]).contenders
        assert {'mmvan-torch', 'mmvan-unfused', 'mmvan-cl'} <= set(contenders)


def run_gpu_check(root, tmp_path, python_script):
    """gpu_check.sh run with a stand-in for Python (``python_script``, a
    shell script); its completed process, output captured."""
    python = tmp_path / 'python'
    python.write_text(python_script)
    python.chmod(0o755)
    return subprocess.run(
        ['bash', 'tools/analysis_tools/gpu_check.sh',
         str(python)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60)


def test_gpu_check_commands_parse(root, tmp_path, tool):
    """Every command of gpu_check.sh, as bash expands it, is one its tool
    takes."""
    log = tmp_path / 'commands'
    # A Python that has a GPU (its ``-c`` check passes) and records the
    # scripts it is asked to run.
    out = run_gpu_check(
        root, tmp_path, '#!/bin/sh\n'
        f'case "$1" in tools/*) echo "$@" >> {log};; esac\n')
    assert out.returncode == 0, out.stderr
    commands = [line.split() for line in log.read_text().splitlines()]
    scripts = [cmd[0] for cmd in commands]
    assert sorted(set(scripts)) == [
        f'tools/analysis_tools/{name}.py'
        for name in ('benchmark', 'kernel_bandwidth', 'train_speed')
    ]
    for script, *args in commands:
        name = os.path.basename(script)[:-3]
        parsed = tool(name).parse_args(args)
        if name != 'kernel_bandwidth':
            assert os.path.isfile(os.path.join(root, parsed.config))
            assert parsed.device == 'cuda'
        if name == 'train_speed':
            assert set(parsed.contenders) <= set(train_speed.CONTENDERS)
            assert parsed.precisions == ['fp32', 'amp']
    contenders = {
        c
        for script, *args in commands if script.endswith('train_speed.py')
        for c in tool('train_speed').parse_args(args).contenders
    }
    assert {'mmvan-unfused', 'mmvan-cl'} <= contenders


# A Python that reports a GPU and fails the first step.
FAILING_PYTHON = """#!/usr/bin/env bash
case "$1" in
    -c) exit 0 ;;  # torch.cuda.is_available()
    *kernel_bandwidth.py) echo "bandwidth table"; exit 3 ;;
    *) echo "ran $(basename "$1") ${*:2}" ;;
esac
"""


def test_a_failed_step_does_not_stop_the_others(root, tmp_path):
    """On a GPU a failed step does not stop the others, and the end says
    which failed."""
    out = run_gpu_check(root, tmp_path, FAILING_PYTHON)
    assert out.returncode == 1
    ran = [line for line in out.stdout.splitlines() if line.startswith('ran')]
    # Two training tables and two inference runs, after the failed step.
    assert [line.split()[1] for line in ran] == [
        'train_speed.py', 'train_speed.py', 'benchmark.py', 'benchmark.py'
    ]
    assert 'mmvan-unfused mmvan-cl' in ran[0]
    assert '--batch-size 1 ' in ran[3]
    assert out.stderr.strip().splitlines()[-1] == (
        '[gpu_check] failed: kernel bandwidth (exit 3)')
