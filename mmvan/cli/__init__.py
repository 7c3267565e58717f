# Copyright (c) mmvan contributors. All rights reserved.
"""What the command-line tools share: their common arguments, the checks
a run makes on its config before anything is built (pretrained references,
CPU fallbacks for GPU recipes, the image-loading policy), and user mistakes
turned into one clear message.

This is the top layer of the package: it may use every other one (see
:mod:`mmvan`). The config and data helpers of :mod:`mmvan.utils.config` and
:mod:`mmvan.utils.data_check` are named here too, for the tools.

What one tool runs is a module of its own, named after the tool, which a
tool imports itself (this package does not import them: they use it):
:mod:`.train`, :mod:`.test`, :mod:`.demo` (``tools/demo.py``),
:mod:`.image_demo` (``demo/image_demo.py``), :mod:`.pytorch2onnx`,
:mod:`.fold_van` and :mod:`.van2mmvan`. The analysis tools call
:mod:`mmvan.analysis`.
"""
import gc
import logging
import os
import os.path as osp
import re
import sys
import traceback
import warnings

import torch.distributed as dist
from mmengine.config import DictAction

from mmvan.apis.setup import register_all_modules
from mmvan.datasets.loading import dataset_pipelines, is_image_loader
from mmvan.engine.device import apply_device_fallbacks
from mmvan.models.backbones.van import PRETRAINED_INITIALIZER
from mmvan.utils.config import (RUNTIME_KEYS, load_config, set_work_dir,
                                sync_bn_to_bn)
from mmvan.utils.data_check import check_data
from mmvan.utils.errors import ConfigError, MMVanError, UserError
from mmvan.zoo import find_model

__all__ = [
    'add_launcher_args', 'parse_args', 'run_cli', 'UserError', 'ConfigError',
    'MMVanError', 'RUNTIME_KEYS', 'apply_device_fallbacks', 'check_data',
    'check_pretrained', 'load_config', 'set_image_policy', 'set_work_dir',
    'sync_bn_to_bn'
]

# mmengine's builder and Python raise these for config mistakes (an unknown
# keyword, a type missing from a registry); mmvan's own are ConfigError.
_CONFIG_ERROR_PATTERNS = (
    r'unexpected keyword argument',
    r'missing \d+ required positional argument',
    r'is not in the \S+ registry',
)

_NOT_ENDED = object()


def add_launcher_args(parser, cfg_options_help='override config settings'):
    """Add what train.py and test.py both take: ``--cfg-options``,
    ``--launcher`` and ``--local-rank``; parse with :func:`parse_args`."""
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help=cfg_options_help)
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_args(parser, argv=None):
    """Parse ``argv``; ``--local-rank`` becomes ``LOCAL_RANK`` unless the
    launcher has set it."""
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _is_config_error(exc):
    if not isinstance(exc, (TypeError, KeyError, ValueError)):
        return False
    text = str(exc)
    return any(re.search(p, text) for p in _CONFIG_ERROR_PATTERNS)


def run_cli(main):
    """Run a tool's ``main``; report mmvan's errors (and config mistakes
    found while building) in one ``error:`` line, exit status 2.

    In a distributed run the failing rank prints its message first and then
    leaves at once, without waiting for its peers in a collective (they
    would be blocked in one of their own): torchrun stops the others within
    seconds. Set ``MMVAN_DEBUG=1`` to see the full traceback instead.
    """
    _ignore_known_upstream_warnings()
    ended = _NOT_ENDED
    try:
        register_all_modules()
        result = main()
    except SystemExit as e:
        # A tool that ends the run itself (PreemptionHook after a stop
        # signal): the run's objects are freed before Python shuts down, as
        # after a normal end (see _close_process_group).
        ended = e.code
    except ConfigError as e:
        message = 'config: ' + _clean_build_message(str(e))
    except MMVanError as e:
        message = str(e)
    except Exception as e:  # noqa: B902
        if not _is_config_error(e):
            if _distributed():
                traceback.print_exc()
                _leave_now(1)
            raise
        message = 'config: ' + _clean_build_message(str(e))
    else:
        _close_process_group()
        return result
    if ended is not _NOT_ENDED:
        # Outside the except clause: the traceback (and the frames holding
        # the Runner) is released.
        gc.collect()
        sys.exit(ended)
    if os.environ.get('MMVAN_DEBUG'):
        traceback.print_exc()
    rank = _rank_prefix()
    print(f'error: {rank}{message}', file=sys.stderr, flush=True)
    if _distributed():
        _leave_now(2)
    sys.exit(2)


def _ignore_known_upstream_warnings():
    """In a tool's process: mmengine imports ``pkg_resources`` when a config
    inherits another package's config (``mmdet::...``), and setuptools warns
    on every start that it is deprecated; nothing a user can act on."""
    warnings.filterwarnings(
        'ignore', message='pkg_resources is deprecated', category=UserWarning)


def _distributed():
    return dist.is_available() and dist.is_initialized()


def _rank_prefix():
    if not _distributed():
        return ''
    return f'(rank {dist.get_rank()}) '


def _leave_now(status):
    """Exit without any collective clean-up (a barrier would wait for peers
    that are blocked elsewhere); logs are flushed first."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(status)


def _close_process_group():
    """After a successful run: free what the run built, let every rank
    finish, then destroy the process group.

    The Runner sits in reference cycles (its loops and hooks point back at
    it) and its DDP model holds the process group, so gloo's worker threads
    outlive ``destroy_process_group`` until the cyclic garbage collector
    frees the Runner. Left alone, that happens during interpreter shutdown,
    where tearing the threads down aborts the process now and then
    ("terminate called without an active exception") and torchrun reports
    a finished run as failed. Collected here, the group's threads are
    joined while Python is still fully alive.
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def _clean_build_message(text):
    # A KeyError's text is the repr of its message: one pair of quotes
    # around the whole (the message's own quotes stay).
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in '"\'':
        text = text[1:-1]
    # mmengine prefixes "class `VAN` in mmvan/models/...py: "
    text = re.sub(r'class `(\w+)` in [^:]+\.py: ', r'\1: ', text)
    return text.splitlines()[0] if text else text


def check_pretrained(cfg):
    """A local ``Pretrained`` checkpoint in the model config must exist
    before training starts."""
    missing = []

    def visit(node):
        if isinstance(node, dict):
            init = node.get('init_cfg')
            inits = init if isinstance(init, (list, tuple)) else [init]
            for item in inits:
                if isinstance(item, dict) and item.get('type') in (
                        'Pretrained', PRETRAINED_INITIALIZER):
                    ckpt = item.get('checkpoint')
                    if isinstance(ckpt, str) and ckpt.startswith('mmvan://'):
                        find_model(ckpt[len('mmvan://'):])
                    elif isinstance(ckpt, str) and not re.match(
                            r'\w+://', ckpt) and not osp.isfile(ckpt):
                        missing.append(ckpt)
            for value in node.values():
                visit(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                visit(value)

    visit(cfg.get('model', {}))
    if missing:
        raise UserError(
            f'pretrained checkpoint {missing[0]} not found. Point the '
            f'backbone at a file, an URL or a zoo name with --cfg-options '
            f'model.backbone.init_cfg.checkpoint=mmvan://NAME (any known '
            f'format loads; mmvan.apis.list_models() lists the names), or '
            f'train from scratch with --cfg-options '
            f'model.backbone.init_cfg=None.')


def set_image_policy(cfg, train=True):
    """Load images with ``mmvan.LoadImageFromFile``, which names an
    unreadable file: skipped and counted in training (the config's
    ``unreadable_images=dict(policy='skip'|'raise', max_share=0.001)``),
    an error naming it in validation and testing.

    Returns:
        dict: the training policy (``policy``, ``max_share``).
    """
    policy = dict(policy='skip', max_share=0.001)
    policy.update(cfg.get('unreadable_images') or {})
    if policy['policy'] not in ('skip', 'raise'):
        raise UserError(f"unreadable_images.policy must be 'skip' or "
                        f"'raise', got {policy['policy']!r}.")
    loaders = {
        'train_dataloader': policy['policy'] if train else 'raise',
        'val_dataloader': 'raise',
        'test_dataloader': 'raise'
    }
    for name, on_error in loaders.items():
        loader = cfg.get(name)
        if not loader:
            continue
        for pipeline in dataset_pipelines(loader.get('dataset')):
            for step in pipeline:
                if is_image_loader(step):
                    step['type'] = 'mmvan.LoadImageFromFile'
                    step['on_error'] = on_error
    return policy
