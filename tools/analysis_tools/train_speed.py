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

- ``mmvan``: the config as ``tools/train.py`` runs it (channels-last VAN on
  CPU);
- ``mmvan-plain``: the same with ``train_fast_path.layout=contiguous``;
- ``mmpretrain``: the same config with mmpretrain's VAN as the backbone
  (same weights), in its default layout;
- ``mmpretrain-cl``: mmpretrain's VAN with channels-last weights and input.

They run alternately, one step each per round, so machine noise hits all
alike; the table gives the median img/s, the ratios against mmpretrain and
the first step's loss difference (same weights and batch).
``--profile`` adds the operators that take the time in mmvan's step.
"""
import argparse
import copy
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

CONTENDERS = ('mmvan', 'mmvan-plain', 'mmpretrain', 'mmpretrain-cl')


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
        '--amp', action='store_true', help='as tools/train.py --amp')
    return parser.parse_args(argv)


def build(config, name, batch_size, data_root, work_dir, amp):
    from mmvan.engine.runner import Runner
    from mmvan.models.utils import to_channels_last
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
    cfg.train_fast_path = dict(
        layout='contiguous' if name != 'mmvan' else 'auto')
    if name.startswith('mmpretrain'):
        arch = cfg.model.backbone.arch
        backbone = cfg.model.backbone
        cfg.model.backbone = dict(
            type='mmpretrain.VAN',
            arch=dict(b0='tiny', b1='small', b2='base',
                      b3='large').get(arch, arch),
            drop_path_rate=backbone.get('drop_path_rate', 0.),
            norm_cfg=dict(type='LN', eps=1e-6))
    cli.apply_device_fallbacks(cfg, amp=amp)
    runner = Runner.from_cfg(cfg)
    if name == 'mmpretrain-cl':
        to_channels_last(runner.model.backbone)
    return runner


def main(argv=None):
    import torch

    from mmvan.converters import to_mmpretrain_names
    from mmvan.datasets import make_classification_demo
    args = parse_args(argv)
    tmp = tempfile.mkdtemp(prefix='mmvan-train-speed-')
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
        # Mixup / CutMix and drop-path draw the same random numbers.
        torch.manual_seed(0)
        with torch.no_grad():
            data = runner.model.data_preprocessor(
                copy.deepcopy(batches[0]), True)
            out = runner.model(**data, mode='loss')
        losses[name] = float(sum(v for k, v in out.items() if 'loss' in k))
    times = {name: [] for name in runners}
    rounds = args.warmup + args.iters
    for i in range(rounds):
        for name, runner in runners.items():
            batch = copy.deepcopy(batches[i % len(batches)])
            start = time.perf_counter()
            runner.model.train_step(batch, runner.optim_wrapper)
            elapsed = time.perf_counter() - start
            if i >= args.warmup:
                times[name].append(elapsed)
    rate = {
        name: args.batch_size / statistics.median(t)
        for name, t in times.items()
    }
    base = rate.get('mmpretrain')
    base_cl = rate.get('mmpretrain-cl')
    lines = [
        f'{osp.basename(args.config)}, batch {args.batch_size}, '
        f'{args.iters} timed rounds (alternating), torch '
        f'{torch.__version__}, {torch.get_num_threads()} threads',
        f'{"path":<14} {"img/s":>7} {"vs mmpretrain":>14} '
        f'{"vs mmpretrain-cl":>17} {"loss diff":>10}'
    ]
    for name in runners:
        r = rate[name]
        vs = f'{r / base:.2f}x' if base else '-'
        vs_cl = f'{r / base_cl:.2f}x' if base_cl else '-'
        diff = abs(losses[name] - losses[next(iter(runners))])
        lines.append(f'{name:<14} {r:>7.2f} {vs:>14} {vs_cl:>17} '
                     f'{diff:>10.2e}')
    print('\n'.join(lines))
    if args.profile and 'mmvan' in runners:
        from torch.profiler import ProfilerActivity, profile
        runner = runners['mmvan']
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            runner.model.train_step(
                copy.deepcopy(batches[0]), runner.optim_wrapper)
        print(prof.key_averages().table(
            sort_by='self_cpu_time_total', row_limit=15))
    return rate


if __name__ == '__main__':
    cli.run_cli(main)
