# Copyright (c) mmvan contributors. All rights reserved.
"""gpu_check.sh on a GPU: a failed step does not stop the others, and the
end says which failed (run with a stand-in for Python that reports a GPU
and fails one step)."""
import os
import stat
import subprocess

FAKE_PYTHON = """#!/usr/bin/env bash
case "$1" in
    -c) exit 0 ;;  # torch.cuda.is_available()
    *kernel_bandwidth.py) echo "bandwidth table"; exit 3 ;;
    *) echo "ran $(basename "$1") ${*:2}" ;;
esac
"""


def test_a_failed_step_does_not_stop_the_others(root, tmp_path):
    python = tmp_path / 'python'
    python.write_text(FAKE_PYTHON)
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    out = subprocess.run(
        ['bash', 'tools/analysis_tools/gpu_check.sh',
         str(python)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ))
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
