# Copyright (c) mmvan contributors. All rights reserved.
"""Training speed as ``tools/train.py`` runs it, against mmpretrain's VAN
(``mmvan.analysis.train_speed``, whose docstring ``--help`` shows first).

    python tools/analysis_tools/train_speed.py \\
        configs/van/van-b0_8xb128_in1k.py --batch-size 16 --iters 5
    python tools/analysis_tools/train_speed.py \\
        configs/van/van-b2_8xb128_in1k.py --batch-size 8 --iters 5 --profile

``--profile`` adds the operators that take the time in mmvan's step.

``--precisions fp32 amp`` runs every contender both in fp32 and as
``tools/train.py --amp`` trains it (bf16 autocast without a loss scaler on
a GPU with bf16 and on CPU; see
:func:`mmvan.engine.device.apply_device_fallbacks`), alternating all of
them; ratios compare contenders of the same precision, and a last line
gives each contender's amp / fp32 ratio. ``--amp`` is ``--precisions
amp``. ``--device cuda`` stops with an error where there is no GPU.

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

from mmvan import cli
from mmvan.analysis import train_speed


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=train_speed.__doc__,
        epilog=__doc__,
        formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--iters', type=int, default=5, help='timed rounds')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument(
        '--contenders',
        nargs='+',
        choices=train_speed.CONTENDERS,
        help='default: all (' + ', '.join(train_speed.GPU_ONLY) +
        ' only where there is a GPU)')
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
    parser.add_argument(
        '--precisions',
        nargs='+',
        choices=train_speed.PRECISIONS,
        help='run each contender in these precisions (amp: as '
        'tools/train.py --amp); default fp32, or amp with --amp')
    parser.add_argument(
        '--device',
        choices=('auto', 'cuda', 'cpu'),
        default='auto',
        help='cuda: stop with an error where there is no GPU; the runs '
        'use the GPU when there is one (as tools/train.py)')
    args = parser.parse_args(argv)
    if args.contenders is None:
        args.contenders = train_speed.default_contenders()
    if args.precisions is None:
        args.precisions = ['amp'] if args.amp else ['fp32']
    elif args.amp:
        parser.error('give --amp or --precisions, not both')
    args.precisions = list(dict.fromkeys(args.precisions))
    return args


def main(argv=None):
    args = parse_args(argv)
    options = dict(
        batch_size=args.batch_size,
        iters=args.iters,
        warmup=args.warmup,
        contenders=args.contenders,
        precisions=args.precisions,
        device=args.device)
    if args.train_py:
        return train_speed.measure_train_py(
            args.config,
            rounds=args.rounds,
            num_workers=args.num_workers,
            checkout=args.checkout,
            **options)
    return train_speed.measure_train_steps(
        args.config, profile_steps=args.profile, **options)


if __name__ == '__main__':
    cli.run_cli(main)
