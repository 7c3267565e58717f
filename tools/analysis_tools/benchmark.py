# Copyright (c) mmvan contributors. All rights reserved.
"""Throughput and peak memory of a config's backbone (or whole classifier),
optionally against mmpretrain's VAN with the same weights in the same run.

    python tools/analysis_tools/benchmark.py \
        configs/van/van-b0_8xb128_in1k.py --batch-size 16 --deploy \
        --channels-last --compile --compare mmpretrain

Throughput is the median of repeated timed runs after warm-up. With
``--compare mmpretrain`` the two models run alternately, so machine noise
affects both alike, and the ratio and the largest output difference are
printed.

``--train`` times training steps as ``tools/train.py`` builds them (the
config's data preprocessor, the runner's optimizer wrapper, the training
fast path; on CUDA the Triton depth-wise kernels) against the same with
PyTorch's depth-wise convolutions, mmpretrain's VAN in its default path
and channels-last, with activation checkpointing, on the same weights and
batches: the table of ``tools/analysis_tools/train_speed.py`` (img/s, peak
memory, loss difference); ``--precisions fp32 amp`` in fp32 and as
``tools/train.py --amp`` trains (bf16 on a GPU with bf16).

    python tools/analysis_tools/benchmark.py \
        configs/van/van-b2_8xb128_in1k.py --train --device cuda \
        --batch-size 32 --precisions fp32 amp

``--compare onnxruntime openvino mmpretrain`` runs every runtime on the same
folded weights (exported once to ONNX), alternated in one process, next to
mmvan's default inference path (``init_model(backend='auto')``: the runtime
``auto`` picks, run as mmvan runs it) and the folded PyTorch model; it
prints img/s, the latency at batch 1, peak memory, the share of the compute
ceiling (``--ceiling``) and the largest output difference from the model as
trained, as a table (``--plot`` draws it). ``--bf16`` adds mmvan's
``precision='bf16'`` path and OpenVINO's default precision.

    python tools/analysis_tools/benchmark.py \
        configs/van/van-b0_8xb128_in1k.py --batch-size 16 --deploy \
        --channels-last --compare onnxruntime openvino mmpretrain --bf16 \
        --ceiling --plot b0.png
"""
import argparse

from mmengine.config import DictAction

from mmvan import cli
from mmvan.analysis import speed, train_speed


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('config')
    p.add_argument('--checkpoint', help='weights (default: random init)')
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--shape', type=int, nargs=2, default=[224, 224])
    p.add_argument(
        '--deploy', action='store_true', help='fold BatchNorms/layer scales')
    p.add_argument('--channels-last', action='store_true')
    p.add_argument(
        '--chunk-mib',
        type=float,
        default=8,
        help='with --deploy: slice each batch so a stage\'s largest '
        'activation fits in this many MiB (0: whole batches)')
    p.add_argument(
        '--keep-freed-memory',
        action='store_true',
        help='make glibc malloc reuse freed memory instead of mapping it '
        'afresh (process-wide, so it speeds up both implementations)')
    p.add_argument(
        '--compile',
        action='store_true',
        help='torch.compile (inductor, freezing) the mmvan model')
    p.add_argument(
        '--compare',
        nargs='+',
        choices=['mmpretrain', 'onnxruntime', 'openvino'],
        default=[],
        help='also run these implementations / runtimes with the same '
        'weights')
    p.add_argument(
        '--bf16',
        action='store_true',
        help='with runtimes in --compare: also time mmvan\'s '
        'precision=\'bf16\' path and OpenVINO\'s default precision')
    p.add_argument(
        '--latency-repeats',
        type=int,
        default=None,
        help='timed batch-1 runs per runtime (default: --repeats)')
    p.add_argument('--plot', help='with runtimes: draw the table to this file')
    p.add_argument('--json', help='write the results to this file')
    p.add_argument(
        '--compare-channels-last',
        action='store_true',
        help='run the reference model channels-last too')
    p.add_argument(
        '--train',
        action='store_true',
        help='time training steps as tools/train.py builds them, against '
        'mmpretrain and with activation checkpointing (train_speed.py)')
    p.add_argument(
        '--precisions',
        nargs='+',
        choices=['fp32', 'amp'],
        default=['fp32'],
        help='with --train: time each path in these precisions (amp: as '
        'tools/train.py --amp)')
    p.add_argument(
        '--ceiling',
        action='store_true',
        help='also measure this machine\'s fp32 matrix-multiply rate and '
        'report each throughput as a share of the rate it allows')
    p.add_argument('--repeats', type=int, default=7)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--device', default=speed.default_device())
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def check_train_args(args):
    """``--train`` takes the options of a training step only."""
    if args.compare or args.deploy or args.compile or args.bf16:
        raise cli.UserError('--train compares training paths (mmvan, '
                            'mmpretrain, with_cp) by itself; drop '
                            '--compare, --deploy, --compile and --bf16.')
    if args.shape != [224, 224] or args.cfg_options:
        raise cli.UserError('--train feeds the config\'s training pipeline; '
                            'set its size in the config, not with --shape '
                            'or --cfg-options.')


def main(argv=None):
    args = parse_args(argv)
    speed.check_device(args.device)
    if args.train:
        check_train_args(args)
        return train_speed.measure_train_steps(
            args.config,
            batch_size=args.batch_size,
            iters=args.repeats,
            warmup=args.warmup,
            precisions=args.precisions,
            device='cuda' if args.device.startswith('cuda') else 'cpu')
    if args.precisions != ['fp32']:
        raise cli.UserError('--precisions goes with --train; inference in '
                            'bf16 is --bf16 with --compare runtimes.')
    return speed.benchmark(
        args.config,
        checkpoint=args.checkpoint,
        batch_size=args.batch_size,
        shape=args.shape,
        deploy=args.deploy,
        channels_last=args.channels_last,
        chunk_mib=args.chunk_mib,
        keep_freed=args.keep_freed_memory,
        compile=args.compile,
        compare=args.compare,
        bf16=args.bf16,
        latency_repeats=args.latency_repeats,
        plot=args.plot,
        json_file=args.json,
        compare_channels_last=args.compare_channels_last,
        ceiling=args.ceiling,
        repeats=args.repeats,
        warmup=args.warmup,
        device=args.device,
        cfg_options=args.cfg_options)


if __name__ == '__main__':
    cli.run_cli(main)
