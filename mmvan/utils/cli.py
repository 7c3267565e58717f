# Copyright (c) mmvan contributors. All rights reserved.
"""What the command-line tools share: loading configs, checking data and
turning user mistakes into one clear message."""
import difflib
import os
import os.path as osp
import re
import sys
import traceback

from .errors import ConfigError, MMVanError, UserError

# mmengine's builder and Python raise these for config mistakes (an unknown
# keyword, a type missing from a registry); mmvan's own are ConfigError.
_CONFIG_ERROR_PATTERNS = (
    r'unexpected keyword argument',
    r'missing \d+ required positional argument',
    r'is not in the \S+ registry',
)


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
    try:
        result = main()
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
    """After a successful run, let every rank finish before the process
    group goes away, so that no rank aborts on a peer that has exited."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def _clean_build_message(text):
    # mmengine prefixes "class `VAN` in mmvan/models/...py: "
    text = text.strip().strip('"').strip("'")
    text = re.sub(r'class `(\w+)` in [^:]+\.py: ', r'\1: ', text)
    return text.splitlines()[0] if text else text


# Top-level settings a config may leave out that the tools still read.
RUNTIME_KEYS = ('work_dir', 'load_from', 'load_from_strict', 'resume',
                'unreadable_images', 'train_fast_path', 'compile')


def load_config(path, cfg_options=None):
    """``Config.fromfile`` with clear errors, then ``--cfg-options``.

    A ``--cfg-options`` key whose first part is not in the config is an
    error with suggestions (a typo would otherwise be silently ignored).
    """
    from mmengine.config import Config

    import mmvan  # noqa: F401  (mmvan:: inheritance, safe loading)
    if not osp.isfile(path):
        hint = ''
        folder = osp.dirname(path) or '.'
        if osp.isdir(folder):
            close = difflib.get_close_matches(
                osp.basename(path), os.listdir(folder), n=3)
            if close:
                hint = f' Did you mean: {", ".join(close)}?'
        raise UserError(f'Config file {path} does not exist.{hint}')
    try:
        cfg = Config.fromfile(path)
    except (SyntaxError, NameError, FileNotFoundError, KeyError) as e:
        raise UserError(f'Cannot read config {path}: '
                        f'{type(e).__name__}: {e}') from None
    if cfg_options:
        for key in cfg_options:
            top = key.split('.', 1)[0]
            if top not in cfg and top not in RUNTIME_KEYS:
                close = difflib.get_close_matches(top, list(cfg.keys()), n=3)
                hint = f' Did you mean: {", ".join(close)}?' if close else ''
                raise UserError(
                    f'--cfg-options key {key!r}: {top!r} is not a key of '
                    f'{path}.{hint}')
        cfg.merge_from_dict(cfg_options)
    return cfg


# Where each dataset type expects its data, and how to get it.
_DATA_HINTS = {
    'ImageNet':
    ('ImageNet-1k: download it from https://image-net.org, then arrange '
     'it as <data_root>/train/<wnid>/*.JPEG and <data_root>/val/... '
     '(optionally with meta/train.txt and meta/val.txt annotation '
     'lists); see configs/van/README.md.'),
    'CustomDataset':
    ('an image folder: <data_root>/<data_prefix>/<class>/<image> or an '
     'annotation list file.'),
    'CocoDataset':
    ('COCO 2017: download train2017, val2017 and annotations from '
     'https://cocodataset.org and place them under <data_root>.'),
    'ADE20KDataset':
    ('ADE20K (ADEChallengeData2016): download it from '
     'http://sceneparsing.csail.mit.edu and place images/ and '
     'annotations/ under <data_root>.'),
}


def _iter_datasets(dataset_cfg):
    if dataset_cfg is None:
        return
    inner = dataset_cfg.get('dataset')
    if inner is not None:
        yield from _iter_datasets(inner)
        return
    datasets = dataset_cfg.get('datasets')
    if datasets is not None:
        for d in datasets:
            yield from _iter_datasets(d)
        return
    yield dataset_cfg


def _dataset_paths(ds):
    """The files and folders a dataset config needs."""
    root = ds.get('data_root', '') or ''
    paths = []
    if root:
        paths.append(root)
    ann = ds.get('ann_file', '') or ''
    if ann:
        paths.append(osp.join(root, ann))
    prefix = ds.get('data_prefix', None)
    if isinstance(prefix, str):
        prefixes = [prefix]
    elif isinstance(prefix, dict):
        prefixes = [v for v in prefix.values() if isinstance(v, str)]
    else:
        prefixes = []
    split = ds.get('split', None)
    if str(ds.get('type', '')).split('.')[-1] == 'CUB':
        # CUB's split is a column of its lists, not a folder.
        if root:
            paths.append(osp.join(root, 'images.txt'))
    elif split and not ann and not prefixes:
        prefixes = [split]
    for p in prefixes:
        if p:
            paths.append(osp.join(root, p))
    return paths


def check_data(cfg, loaders):
    """Fail with one message when a dataset's files are missing.

    Args:
        cfg (Config): The config.
        loaders (list[str]): e.g. ``['train_dataloader', 'val_dataloader']``.
    """
    missing = []
    for name in loaders:
        loader = cfg.get(name)
        if not loader:
            continue
        for ds in _iter_datasets(loader.get('dataset')):
            for path in _dataset_paths(ds):
                if not osp.exists(path) and not re.match(r'\w+://', path):
                    missing.append((name, ds.get('type', '?'), path))
                    break
    if not missing:
        for name in loaders:
            for ds in _iter_datasets((cfg.get(name) or {}).get('dataset')):
                _check_imagenet_layout(name, ds)
        return
    lines = []
    for name, ds_type, path in missing:
        short_type = str(ds_type).split('.')[-1]
        hint = _DATA_HINTS.get(short_type, '')
        lines.append(f'{name} ({short_type}): {path} not found '
                     f'(looked in {osp.abspath(path)}).' +
                     (f' Expected {hint}' if hint else ''))
    raise UserError('dataset not found.\n  ' + '\n  '.join(lines) +
                    '\n  Point the config at your copy with --cfg-options '
                    f'{missing[0][0]}.dataset.data_root=/path/to/data.')


def _check_imagenet_layout(name, ds):
    """ImageNet without an annotation list needs its 1000 class folders;
    with fewer, mmpretrain fails with a traceback: say what to do."""
    if str(ds.get('type', '')).split('.')[-1] != 'ImageNet':
        return
    root, split = ds.get('data_root') or '', ds.get('split')
    if ds.get('ann_file') or not split or osp.isfile(
            osp.join(root, 'meta', f'{split}.txt')):
        return
    folder = osp.join(root, split)
    if not osp.isdir(folder):
        return
    classes = [d for d in os.listdir(folder) if osp.isdir(osp.join(folder, d))]
    if len(classes) != 1000:
        raise UserError(
            f'{name} (ImageNet): {folder} has {len(classes)} class folders '
            f'and there is no {osp.join(root, "meta", split + ".txt")}. '
            f'ImageNet-1k needs its 1000 class folders, or an annotation '
            f'list meta/{split}.txt of "relative/path label" lines. For a '
            f'data set of your own, use type=\'CustomDataset\' with its '
            f'classes.')


def sync_bn_to_bn(node):
    """Replace ``SyncBN`` by ``BN`` in every ``norm_cfg`` / ``out_norm_cfg``
    of a config (sub)tree, in place.

    torch's SyncBatchNorm synchronises only CUDA tensors; on CPU, and in
    single-model uses such as inference or FLOP counting, plain BN computes
    the same.
    """
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ('norm_cfg', 'out_norm_cfg') and isinstance(
                    value, dict) and value.get('type') == 'SyncBN':
                value['type'] = 'BN'
            else:
                sync_bn_to_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            sync_bn_to_bn(value)
    return node


def set_work_dir(cfg, work_dir, config_path):
    """``--work-dir`` if given, else the config's, else
    ``./work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])


def check_pretrained(cfg):
    """A local ``Pretrained`` checkpoint in the model config must exist
    before training starts."""
    missing = []

    def visit(node):
        if isinstance(node, dict):
            init = node.get('init_cfg')
            inits = init if isinstance(init, (list, tuple)) else [init]
            for item in inits:
                if isinstance(item, dict) and item.get('type') == 'Pretrained':
                    ckpt = item.get('checkpoint')
                    if isinstance(ckpt, str) and ckpt.startswith('mmvan://'):
                        from mmvan.zoo import find_model
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


def apply_device_fallbacks(cfg, launcher='none', amp=False):
    """Adapt a GPU recipe to a machine without one: gloo for distributed
    runs and bfloat16 autocast for ``--amp``.

    mmengine's ``init_dist`` selects a CUDA device unconditionally, so on a
    machine without GPUs the process group of a ``--launcher pytorch`` run
    (``tools/dist_train.sh``) is created here, with gloo; the Runner then
    uses it as it is.
    """
    import torch
    has_cuda = torch.cuda.is_available()
    if launcher != 'none' and not has_cuda:
        if launcher != 'pytorch':
            raise UserError(
                f'--launcher {launcher} needs GPUs; on a machine without '
                f'them use tools/dist_train.sh (--launcher pytorch).')
        cfg.setdefault('env_cfg', {})
        cfg.env_cfg.setdefault('dist_cfg', {})
        cfg.env_cfg.dist_cfg['backend'] = 'gloo'
        # On CPU each process normalises its own batch.
        sync_bn_to_bn(cfg.model)
        # DistributedDataParallel takes no device ids for CPU modules.
        wrapper = cfg.get('model_wrapper_cfg') or dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        wrapper['device_ids'] = None
        cfg.model_wrapper_cfg = wrapper
        import torch.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group(backend='gloo')
    if amp:
        optim_wrapper = cfg.optim_wrapper
        if optim_wrapper.get('type', 'OptimWrapper') in ('OptimWrapper',
                                                         'AmpOptimWrapper'):
            if has_cuda:
                optim_wrapper['type'] = 'AmpOptimWrapper'
                optim_wrapper.setdefault('loss_scale', 'dynamic')
            else:
                optim_wrapper['type'] = 'mmvan.CPUAmpOptimWrapper'
                optim_wrapper.pop('loss_scale', None)
                optim_wrapper['dtype'] = 'bfloat16'
        else:
            raise UserError(
                f'--amp: the config already uses optim wrapper '
                f'{optim_wrapper.type!r}; set mixed precision there.')
    return cfg


_LOADERS = ('LoadImageFromFile', 'mmcv.LoadImageFromFile',
            'mmpretrain.LoadImageFromFile', 'mmdet.LoadImageFromFile',
            'mmseg.LoadImageFromFile', 'mmvan.LoadImageFromFile')


def _pipelines(dataset_cfg):
    """Every pipeline list of a dataset config (wrappers included)."""
    if not isinstance(dataset_cfg, dict):
        return
    if isinstance(dataset_cfg.get('pipeline'), list):
        yield dataset_cfg['pipeline']
    yield from _pipelines(dataset_cfg.get('dataset'))
    for inner in dataset_cfg.get('datasets') or []:
        yield from _pipelines(inner)


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
        for pipeline in _pipelines(loader.get('dataset')):
            for step in pipeline:
                if isinstance(step, dict) and step.get('type') in _LOADERS:
                    step['type'] = 'mmvan.LoadImageFromFile'
                    step['on_error'] = on_error
    return policy
