# Copyright (c) mmvan contributors. All rights reserved.
"""Training speed as ``tools/train.py`` runs it, against mmpretrain's VAN.

    python tools/analysis_tools/train_speed.py \\
        configs/van/van-b0_8xb128_in1k.py --batch-size 16 --iters 5
    python tools/analysis_tools/train_speed.py \\
        configs/van/van-b2_8xb128_in1k.py --batch-size 8 --iters 5 --profile

Each model is built by the Runner from the config, as ``tools/train.py``
builds it (its data preprocessor, its optimizer wrapper, the training fast
path), and steps through ``train_step`` on the same batches of mmvan's demo
textures (resized by the config's training pipeline). The contenders:

- ``mmvan``: the config as ``tools/train.py`` runs it (on CPU: channels-last
  VAN, the optimizer's fused kernel);
- ``mmvan-plain``: the same with the fast path off (NCHW, torch's default
  optimizer loop);
- ``mmpretrain``: the same config with mmpretrain's VAN as the backbone
  (same weights), in its default layout;
- ``mmvan-cp``: ``mmvan`` with activation checkpointing
  (``model.backbone.with_cp=True``);
- ``mmpretrain-cl``: mmpretrain's VAN with channels-last weights and input
  (the fast path's layout forced on it), torch's default optimizer loop.

They run alternately, one step each per round, so machine noise hits all
alike; the table gives the median img/s, the ratios against mmpretrain, the
step's peak memory (the rise of the resident set during the step on CPU, the
allocator's peak on GPU) and the first step's loss difference (same weights
and batch).
``--profile`` adds the operators that take the time in mmvan's step.

``--train-py`` times whole ``tools/train.py`` runs instead: each contender's
config (as above, one epoch of ``--warmup + --iters`` iterations on the demo
textures, no validation or checkpoints) is written to a file and trained by
``tools/train.py`` in its own process, data loading included; the rate is
the median iteration time of the run's log after the warm-up iterations.
``--rounds`` runs every contender that many times, alternately.
``--checkout DIR`` adds ``DIR``'s ``tools/train.py`` (another mmvan
checkout, e.g. an older commit) on mmvan's config, as ``mmvan@DIR``.
"""
import argparse
import contextlib
import copy
import os
import os.path as osp
import statistics
import sys
import tempfile
import time
import warnings

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
warnings.filterwarnings('ignore')

from mmvan.utils import cli  # noqa: E402

CONTENDERS = ('mmvan', 'mmvan-plain', 'mmvan-cp', 'mmpretrain',
              'mmpretrain-cl')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--iters', type=int, default=5, help='timed rounds')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument(
        '--contenders',
        nargs='+',
        default=list(CONTENDERS),
        choices=CONTENDERS)
    parser.add_argument('--profile', action='store_true')
    parser.add_argument(
        '--train-py',
        action='store_true',
        help='time whole tools/train.py runs (iterations per second from '
        'their logs) instead of train steps in this process')
    parser.add_argument(
        '--rounds',
        type=int,
        default=1,
        help='--train-py: runs of each contender, alternating')
    parser.add_argument(
        '--num-workers',
        type=int,
        default=2,
        help='--train-py: data loading processes')
    parser.add_argument(
        '--checkout',
        help='--train-py: also time this mmvan checkout\'s tools/train.py')
    parser.add_argument(
        '--amp', action='store_true', help='as tools/train.py --amp')
    return parser.parse_args(argv)


def training_config(config, name, batch_size, data_root, work_dir, amp):
    """``config`` as contender ``name`` trains it on the demo textures."""
    options = {
        'train_dataloader.dataset.data_root': data_root,
        'train_dataloader.batch_size': batch_size,
        'train_dataloader.num_workers': 0,
        'work_dir': work_dir,
        'log_level': 'WARNING',
    }
    cfg = cli.load_config(config, options)
    ds = cfg.train_dataloader.dataset
    # The demo textures in ImageNet's on-disk layout, 5 classes.
    ds.type = 'CustomDataset'
    ds.pop('split', None)
    ds.ann_file = 'meta/train.txt'
    ds.data_prefix = 'train'
    cfg.train_dataloader.persistent_workers = False
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    fast = name in ('mmvan', 'mmvan-cp')
    cfg.train_fast_path = dict(
        layout='auto' if fast else 'contiguous',
        fused_optimizer='auto' if fast else False)
    if name == 'mmpretrain-cl':
        # The fast path's layout, forced, on mmpretrain's backbone (weights
        # and input channels-last); torch's default optimizer loop.
        cfg.train_fast_path.layout = 'channels_last'
    if name == 'mmvan-cp':
        cfg.model.backbone.with_cp = True
    if name.startswith('mmpretrain'):
        from mmvan.models import VAN
        backbone = cfg.model.backbone
        if backbone.get('attention', 'lka') != 'lka':
            raise cli.UserError('mmpretrain\'s VAN has LKA attention only; '
                                'compare an LKA config.')
        # mmpretrain's names for the same sizes.
        settings = backbone.arch if isinstance(
            backbone.arch, dict) else VAN.arch_zoo[backbone.arch.lower()]
        cfg.model.backbone = dict(
            type='mmpretrain.VAN',
            arch=dict(
                embed_dims=settings['embed_dims'],
                depths=settings['depths'],
                ffn_ratios=settings['mlp_ratios']),
            drop_path_rate=backbone.get('drop_path_rate', 0.),
            norm_cfg=dict(type='LN', eps=1e-6))
    cli.apply_device_fallbacks(cfg, amp=amp)
    return cfg


def build(config, name, batch_size, data_root, work_dir, amp):
    from mmvan.engine.runner import Runner
    return Runner.from_cfg(
        training_config(config, name, batch_size, data_root, work_dir, amp))


def main(argv=None):
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix='mmvan-train-speed-') as tmp:
        if args.train_py:
            return _measure_train_py(args, tmp)
        return _measure(args, tmp)


def _iteration_times(work_dir):
    """``(seconds, data loading seconds)`` of each iteration, from the
    newest run's ``scalars.json``."""
    import glob
    import json
    files = sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        return []
    times = []
    with open(files[-1]) as f:
        for line in f:
            record = json.loads(line)
            if 'time' in record and 'step' in record:
                times.append((record['step'], record['time'],
                              record.get('data_time', 0.)))
    return [t[1:] for t in sorted(times)]


def _training_path(work_dir):
    """The run's ``training path: ...`` log line (what it ran), if any."""
    import glob
    for path in sorted(glob.glob(osp.join(work_dir, '*', '*.log'))):
        with open(path) as f:
            for line in f:
                if 'training path:' in line:
                    return line.split('training path:', 1)[1].strip()
    return None


def _run_train_py(root, config, work_dir, amp, log):
    """Train ``config`` with ``root``'s tools/train.py in a new process."""
    import subprocess
    env = dict(os.environ)
    env['PYTHONPATH'] = root + os.pathsep + env.get('PYTHONPATH', '')
    cmd = [
        sys.executable,
        osp.join(root, 'tools', 'train.py'), config, '--work-dir', work_dir,
        '--no-validate'
    ] + (['--amp'] if amp else [])
    with open(log, 'a') as out:
        done = subprocess.run(
            cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        raise cli.UserError(f'tools/train.py failed for {config} '
                            f'(exit {done.returncode}); see {log}')


def _measure_train_py(args, tmp):
    from mmvan.datasets import make_classification_demo
    here = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    iters = args.warmup + args.iters
    runs = {name: (here, name) for name in args.contenders}
    if args.checkout:
        checkout = osp.abspath(args.checkout)
        if not osp.isfile(osp.join(checkout, 'tools', 'train.py')):
            raise cli.UserError(f'--checkout {args.checkout}: no '
                                'tools/train.py there.')
        label = f'mmvan@{osp.basename(checkout.rstrip(os.sep))}'
        runs[label] = (checkout, 'mmvan')
    # One epoch of ``iters`` whole batches (5 classes).
    per_class = -(-iters * args.batch_size // 5)
    data_root = make_classification_demo(
        osp.join(tmp, 'data'), num_train=per_class, num_val=1)
    configs = {}
    for label, (root, name) in runs.items():
        cfg = training_config(args.config, name, args.batch_size, data_root,
                              osp.join(tmp, 'unused'), False)
        cfg.train_dataloader.num_workers = args.num_workers
        cfg.train_dataloader.persistent_workers = args.num_workers > 0
        cfg.train_dataloader.drop_last = True
        cfg.train_cfg = dict(by_epoch=True, max_epochs=1)
        cfg.default_hooks.checkpoint = None
        cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
        # Raw iteration times, not a moving average.
        cfg.log_processor = dict(window_size=1)
        cfg.log_level = 'INFO'
        if root != here:
            # An older checkout: its own default path.
            cfg.pop('train_fast_path', None)
        path = osp.join(tmp, f'{len(configs)}_{name}.py')
        cfg.dump(path)
        configs[label] = path
    log = osp.join(tmp, 'train_py.log')
    times = {label: [] for label in runs}
    ran = {}
    from mmengine.utils import ProgressBar
    bar = ProgressBar(args.rounds * len(runs))
    for r in range(args.rounds):
        for label, (root, _) in runs.items():
            work_dir = osp.join(
                tmp, 'runs', f'{r}_{len(times[label])}_'
                f'{label.replace("@", "_")}')
            _run_train_py(root, configs[label], work_dir, args.amp, log)
            got = _iteration_times(work_dir)
            if len(got) < iters:
                raise cli.UserError(
                    f'{label}: {len(got)} iterations logged, expected '
                    f'{iters}; see {log}')
            times[label] += got[args.warmup:]
            ran[label] = _training_path(work_dir) or 'not logged'
            bar.update()
    print()
    rate = {
        label: 1 / statistics.median(t for t, _ in got)
        for label, got in times.items()
    }
    waiting = {
        label: statistics.median(d for _, d in got) * rate[label]
        for label, got in times.items()
    }
    base = rate.get('mmpretrain')
    base_cl = rate.get('mmpretrain-cl')
    lines = [
        f'tools/train.py, {osp.basename(args.config)}, batch '
        f'{args.batch_size}, {args.rounds} run(s) of {args.iters} timed '
        f'iterations each (after {args.warmup}), {args.num_workers} data '
        'workers',
        f'{"path":<16} {"it/s":>7} {"img/s":>7} {"vs mmpretrain":>14} '
        f'{"vs mmpretrain-cl":>17} {"data wait":>10}'
    ]
    for label, r in rate.items():
        vs = f'{r / base:.2f}x' if base else '-'
        vs_cl = f'{r / base_cl:.2f}x' if base_cl else '-'
        lines.append(f'{label:<16} {r:>7.3f} {r * args.batch_size:>7.2f} '
                     f'{vs:>14} {vs_cl:>17} {waiting[label]:>9.1%}')
    lines += [f'{label}: {path}' for label, path in ran.items()]
    print('\n'.join(lines))
    return dict(rate=rate)


@contextlib.contextmanager
def _native_stderr_silenced():
    """The profiler's native library writes start/stop lines to file
    descriptor 2: send them to /dev/null while it runs."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _step_memory_mb(device, step, tmp):
    """Run ``step()``; the memory its tensors take at the step's peak, in
    MiB (CUDA: the allocator's peak above what was allocated before; CPU:
    the profiler's memory timeline, which counts every tensor the step
    allocates whatever the allocator reuses). None when not measurable."""
    import json

    import torch
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    from torch.profiler import ProfilerActivity, profile
    with _native_stderr_silenced(), profile(
            activities=[ProfilerActivity.CPU],
            profile_memory=True,
            record_shapes=True,
            with_stack=True) as prof:
        step()
    path = osp.join(tmp, 'memory_timeline.json')
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            prof.export_memory_timeline(path, device='cpu')
        with open(path) as f:
            _, sizes = json.load(f)
    except Exception:  # noqa: B902 - an API that may go away
        return None
    return max((sum(row) for row in sizes), default=0) / 2**20


def _measure(args, tmp):
    import torch

    from mmvan.converters import to_mmpretrain_names
    from mmvan.datasets import make_classification_demo
    data_root = make_classification_demo(
        osp.join(tmp, 'data'), num_train=4 * args.batch_size, num_val=5)
    runners = {
        name:
        build(args.config, name, args.batch_size, data_root,
              osp.join(tmp, name), args.amp)
        for name in args.contenders
    }
    # The same weights everywhere.
    first = next(iter(runners.values()))
    torch.manual_seed(0)
    first.model.init_weights()
    reference = {k: v.clone() for k, v in first.model.state_dict().items()}
    for name, runner in runners.items():
        sd = dict(reference)
        if name.startswith('mmpretrain'):
            backbone = {
                k[len('backbone.'):]: v
                for k, v in reference.items() if k.startswith('backbone.')
            }
            sd = {
                'backbone.' + k: v
                for k, v in to_mmpretrain_names(backbone).items()
            }
            sd.update({
                k: v
                for k, v in reference.items() if not k.startswith('backbone.')
            })
        runner.model.load_state_dict(sd, strict=True)
        runner.model.train()
        # What runner.train() builds before its first step.
        runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    loader = first.build_dataloader(first.cfg.train_dataloader)
    batches = [copy.deepcopy(b) for _, b in zip(range(2), loader)]
    # The first step's loss, same weights and batch.
    losses = {}
    for name, runner in runners.items():
        # Mixup / CutMix (numpy) and drop-path (torch) draw the same random
        # numbers.
        from mmengine.runner import set_random_seed
        set_random_seed(0)
        with torch.no_grad():
            data = runner.model.data_preprocessor(
                copy.deepcopy(batches[0]), True)
            out = runner.model(**data, mode='loss')
        losses[name] = float(sum(v for k, v in out.items() if 'loss' in k))
    times = {name: [] for name in runners}
    memory = {}
    device = str(first.model.data_preprocessor.device)
    rounds = args.warmup + args.iters
    for i in range(rounds):
        for name, runner in runners.items():
            batch = copy.deepcopy(batches[i % len(batches)])
            start = time.perf_counter()
            runner.model.train_step(batch, runner.optim_wrapper)
            elapsed = time.perf_counter() - start
            if i >= args.warmup:
                times[name].append(elapsed)
    # Memory after the timings (profiling slows a step down).
    for name, runner in runners.items():
        batch = copy.deepcopy(batches[0])
        memory[name] = _step_memory_mb(
            device,
            lambda: runner.model.train_step(batch, runner.optim_wrapper), tmp)
    rate = {
        name: args.batch_size / statistics.median(t)
        for name, t in times.items()
    }
    peak = memory
    base = rate.get('mmpretrain')
    base_cl = rate.get('mmpretrain-cl')
    lines = [
        f'{osp.basename(args.config)}, batch {args.batch_size}, '
        f'{args.iters} timed rounds (alternating), torch '
        f'{torch.__version__}, {torch.get_num_threads()} threads',
        f'{"path":<14} {"img/s":>7} {"vs mmpretrain":>14} '
        f'{"vs mmpretrain-cl":>17} {"peak MiB":>9} {"loss diff":>10}'
    ]
    for name in runners:
        r = rate[name]
        vs = f'{r / base:.2f}x' if base else '-'
        vs_cl = f'{r / base_cl:.2f}x' if base_cl else '-'
        diff = abs(losses[name] - losses[next(iter(runners))])
        mib = '-' if peak[name] is None else f'{peak[name]:.0f}'
        lines.append(f'{name:<14} {r:>7.2f} {vs:>14} {vs_cl:>17} '
                     f'{mib:>9} {diff:>10.2e}')
    if peak.get('mmvan') and peak.get('mmvan-cp'):
        lines.append(
            f'with_cp: {peak["mmvan-cp"] / max(peak["mmvan"], 1e-9):.2f}x '
            f'the peak memory at {rate["mmvan"] / rate["mmvan-cp"]:.2f}x the '
            f'step time')
    print('\n'.join(lines))
    if args.profile and 'mmvan' in runners:
        from torch.profiler import ProfilerActivity, profile
        runner = runners['mmvan']
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            runner.model.train_step(
                copy.deepcopy(batches[0]), runner.optim_wrapper)
        print(prof.key_averages().table(
            sort_by='self_cpu_time_total', row_limit=15))
    return dict(rate=rate, peak_mb=peak, loss=losses)


if __name__ == '__main__':
    cli.run_cli(main)
