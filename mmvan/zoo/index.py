# Copyright (c) mmvan contributors. All rights reserved.
"""The model zoo: every released checkpoint, read from the metafiles.

``model-index.yml`` at the repository root imports one ``metafile.yml`` per
config folder, in mmpretrain's layout. Each model entry has mmpretrain's
fields (``Name``, ``Config``, ``Weights``, ``Results``, ``Metadata``,
``Converted From``) and a few of mmvan's own:

- ``Alias``: other names of the entry (older spellings);
- ``Sha256``: the sha256 of the file at ``Weights`` (all 64 digits, or the
  first 8 that OpenMMLab file names carry), checked on download;
- ``File``: the file name to cache and mirror it under (default: the last
  part of the URL);
- ``Download``: ``direct`` (default) or ``share-page`` when the release is a
  web page that a program cannot download; such a file must be placed in
  the cache or a mirror by hand.

``MMVAN_MODEL_INDEX`` points at another index (or a single metafile).
"""
import fnmatch
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Optional

from mmvan.utils.checkpoint import CheckpointError


class UnknownModelError(CheckpointError):
    """A zoo name that no metafile lists."""


@dataclass
class ModelInfo:
    """One zoo entry."""
    name: str
    config: Optional[str]
    weights: Optional[str]
    aliases: tuple = ()
    sha256: Optional[str] = None
    file: Optional[str] = None
    download: str = 'direct'
    task: Optional[str] = None
    dataset: Optional[str] = None
    metrics: dict = field(default_factory=dict)
    collection: Optional[str] = None
    metafile: Optional[str] = None
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def file_name(self):
        from mmvan.utils.download import file_name_of
        return file_name_of(self.weights or '', self.file)


def repo_root():
    """The folder holding ``model-index.yml`` and ``configs/``: the
    repository for an editable install, ``mmvan/.mim`` for an installed
    package."""
    package = osp.dirname(osp.dirname(osp.abspath(__file__)))
    for root in (osp.dirname(package), osp.join(package, '.mim')):
        if osp.isfile(osp.join(root, 'model-index.yml')):
            return root
    return osp.dirname(package)


def index_path():
    return os.environ.get('MMVAN_MODEL_INDEX') or osp.join(
        repo_root(), 'model-index.yml')


def _read_yaml(path):
    import yaml
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f) or {}


def _metafiles(path):
    """The metafiles an index names (or the file itself if it is one)."""
    data = _read_yaml(path)
    if 'Import' in data:
        base = osp.dirname(osp.abspath(path))
        # Index paths are relative to the repository root, where the index
        # lives.
        return [osp.join(base, p) for p in data['Import']]
    return [path]


def _entry(raw, metafile, root):
    results = raw.get('Results') or [{}]
    first = results[0] or {}
    config = raw.get('Config')
    if config and not osp.isabs(config):
        config = osp.join(root, config)
    alias = raw.get('Alias') or ()
    if isinstance(alias, str):
        alias = (alias, )
    return ModelInfo(
        name=raw['Name'],
        config=config,
        weights=raw.get('Weights'),
        aliases=tuple(alias),
        sha256=(str(raw['Sha256']).lower() if raw.get('Sha256') else None),
        file=raw.get('File'),
        download=raw.get('Download', 'direct'),
        task=first.get('Task'),
        dataset=first.get('Dataset'),
        metrics=dict(first.get('Metrics') or {}),
        collection=raw.get('In Collection'),
        metafile=metafile,
        raw=raw)


_CACHE = {}


def load_index(path=None):
    """Every zoo entry, in metafile order, as :class:`ModelInfo`."""
    path = osp.abspath(path or index_path())
    stamp = []
    metafiles = _metafiles(path)
    for f in [path, *metafiles]:
        stamp.append(os.stat(f).st_mtime_ns if osp.exists(f) else None)
    key = (path, tuple(stamp))
    if key in _CACHE:
        return _CACHE[key]
    root = osp.dirname(path)
    models, seen = [], {}
    for metafile in metafiles:
        if not osp.isfile(metafile):
            raise CheckpointError(
                f'The model index {path} names {metafile}, which does not '
                f'exist.')
        for raw in _read_yaml(metafile).get('Models') or []:
            info = _entry(raw, metafile, root)
            for name in (info.name, *info.aliases):
                if name in seen:
                    raise CheckpointError(
                        f'Model name {name!r} is used twice in the zoo '
                        f'({seen[name]} and {metafile}).')
                seen[name] = metafile
            models.append(info)
    _CACHE.clear()
    _CACHE[key] = models
    return models


def find_model(name, index=None):
    """The zoo entry named ``name`` (or one of its aliases)."""
    models = load_index(index)
    for info in models:
        if name == info.name or name in info.aliases:
            return info
    import difflib
    names = [m.name for m in models]
    close = difflib.get_close_matches(
        name, names + [a for m in models for a in m.aliases], n=3)
    hint = f' Did you mean: {", ".join(close)}?' if close else ''
    raise UnknownModelError(
        f'{name!r} is not in the model zoo.{hint} mmvan.apis.list_models() '
        f'lists the {len(names)} names.')


def find_by_url(url, index=None):
    """The zoo entry whose ``Weights`` is ``url``, or None."""
    try:
        models = load_index(index)
    except (OSError, CheckpointError):
        return None
    for info in models:
        if info.weights == url:
            return info
    return None


def list_models(pattern=None, task=None, index=None):
    """Names of the zoo models, as mmpretrain's ``list_models``.

    Args:
        pattern (str, optional): A wildcard pattern (``'van-b2*'``); a
            pattern without wildcards matches names that contain it.
        task (str, optional): Only models of this task
            (``'Image Classification'``, ``'Semantic Segmentation'``, ...).

    Returns:
        list[str]: Sorted names.
    """
    names = []
    for info in load_index(index):
        if task is not None and info.task != task:
            continue
        if pattern is not None:
            pat = pattern if any(c in pattern
                                 for c in '*?[') else f'*{pattern}*'
            if not fnmatch.fnmatch(info.name, pat):
                continue
        names.append(info.name)
    return sorted(names)
