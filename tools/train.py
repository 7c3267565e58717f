# Copyright (c) mmvan contributors. All rights reserved.
"""Train a model from a config (classification, detection or segmentation).

    python tools/train.py configs/van/van-b2_8xb128_in1k.py
    bash tools/dist_train.sh configs/van/van-b2_8xb128_in1k.py 8

The console shows the config, the model size, the data, the work dir, one
line per epoch and the metrics; the log file in the work dir has mmengine's
full output, which ``--verbose`` (or ``log_level='DEBUG'``) also prints.
"""
import argparse

from mmvan import cli
from mmvan.cli.train import positive_int_or_recipe, train


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or from the latest '
        'checkpoint in the work dir when no path is given')
    parser.add_argument(
        '--load-from',
        metavar='CKPT',
        help='start a new run from the weights of this checkpoint (any '
        'format mmvan loads; the optimizer and schedule start afresh)')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision training (fp16 on GPU, bf16 on CPU)')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='torch.compile the train step (opt-in; the first iterations '
        'compile)')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate to the actual total batch size')
    parser.add_argument(
        '--effective-batch',
        nargs='?',
        const='recipe',
        type=positive_int_or_recipe,
        metavar='N',
        help="images per optimizer step on any number of processes, by "
        "gradient accumulation at the recipe's learning rate (without N: "
        "the recipe's batch, auto_scale_lr.base_batch_size)")
    parser.add_argument(
        '--ema',
        nargs='?',
        const=True,
        type=float,
        metavar='MOMENTUM',
        help='keep an exponential moving average of the weights, which '
        'validation evaluates and checkpoints hold beside the weights as '
        'trained (default momentum 2e-4, timm\'s decay 0.9998)')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='do not pin memory in the data loaders')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='do not keep data loader workers between epochs')
    parser.add_argument(
        '--verbose',
        action='store_true',
        help="mmengine's full console output (environment, config, hook "
        'table, every logged iteration); the log file always has it')
    cli.add_launcher_args(
        parser,
        cfg_options_help='override config settings, '
        'e.g. model.backbone.arch=b1')
    return cli.parse_args(parser, argv)


def main(argv=None):
    return train(parse_args(argv))


if __name__ == '__main__':
    cli.run_cli(main)
