# Copyright (c) mmvan contributors. All rights reserved.
"""What the command-line tools share: their common arguments, and user
mistakes turned into one clear message. The config and data helpers live in
:mod:`mmvan.utils.config` and :mod:`mmvan.utils.data_check`; they are named
here too, for the tools."""
import gc
import os
import re
import sys
import traceback

from .config import (RUNTIME_KEYS, apply_device_fallbacks, check_pretrained,
                     load_config, set_image_policy, set_work_dir,
                     sync_bn_to_bn)
from .data_check import check_data
from .errors import ConfigError, MMVanError, UserError

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
    from mmengine.config import DictAction
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
    ended = _NOT_ENDED
    try:
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


def _distributed():
    import torch.distributed as dist
    return dist.is_available() and dist.is_initialized()


def _rank_prefix():
    if not _distributed():
        return ''
    import torch.distributed as dist
    return f'(rank {dist.get_rank()}) '


def _leave_now(status):
    """Exit without any collective clean-up (a barrier would wait for peers
    that are blocked elsewhere); logs are flushed first."""
    import logging
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
    import torch.distributed as dist
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
