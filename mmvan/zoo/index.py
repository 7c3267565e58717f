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
The files are read with ``modelindex``, as mmpretrain reads its own.
"""
import difflib
import fnmatch
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import modelindex
import yaml
from mmengine.fileio import load
from modelindex.models.Model import Model

from mmvan.utils.errors import CheckpointError
from .download import file_name_of


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
    # The entry's fields as ``modelindex`` holds them.
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def file_name(self) -> str:
        return file_name_of(self.weights or '', self.file)


def repo_root() -> str:
    """The folder holding ``model-index.yml`` and ``configs/``: the
    repository for an editable install, ``mmvan/.mim`` for an installed
    package."""
    package = osp.dirname(osp.dirname(osp.abspath(__file__)))
    for root in (osp.dirname(package), osp.join(package, '.mim')):
        if osp.isfile(osp.join(root, 'model-index.yml')):
            return root
    return osp.dirname(package)


def index_path() -> str:
    return os.environ.get('MMVAN_MODEL_INDEX') or osp.join(
        repo_root(), 'model-index.yml')


def _entry(model: Model, root: str) -> ModelInfo:
    """A :class:`ModelInfo` of a ``modelindex`` model entry."""
    data = model.data
    results = list(model.results or [])
    first = results[0] if results else None
    config = model.config
    if config and not osp.isabs(config):
        config = osp.join(root, config)
    alias = data.get('Alias') or ()
    if isinstance(alias, str):
        alias = (alias, )
    return ModelInfo(
        name=model.name,
        config=config,
        weights=model.weights,
        aliases=tuple(alias),
        sha256=(str(data['Sha256']).lower() if data.get('Sha256') else None),
        file=data.get('File'),
        download=data.get('Download', 'direct'),
        task=first.task if first is not None else None,
        dataset=first.dataset if first is not None else None,
        metrics=dict((first.metrics if first is not None else None) or {}),
        collection=model.in_collection,
        metafile=model.filepath,
        raw=dict(data))


def _stamp(files: Tuple[str, ...]) -> tuple:
    return tuple(
        os.stat(f).st_mtime_ns if osp.exists(f) else None for f in files)


# index path -> (files it was read from, their stamps, the entries)
_CACHE: Dict[str, tuple] = {}


def _read_index(path: str) -> Tuple[Tuple[str, ...], List[Model]]:
    """The files an index (or a single metafile) is read from, and its
    model entries, read with ``modelindex`` as mmpretrain reads its own."""
    files = _metafiles(path)
    for metafile in files:
        if not osp.isfile(metafile):
            raise CheckpointError(f'The model index {path} names {metafile}, '
                                  f'which does not exist.')
    try:
        index = modelindex.load(path)
    except (OSError, ValueError) as e:
        raise CheckpointError(
            f'The model index {path} cannot be read: {e}') from None
    # modelindex collects what it cannot read instead of raising.
    if index.check_errors:
        raise CheckpointError(
            f'The model index {path}: {index.check_errors[0]}')
    return files, list(index.models)


def _metafiles(path: str) -> Tuple[str, ...]:
    """The files an index is read from: itself and the metafiles it
    imports (a single metafile imports none)."""
    if not osp.isfile(path):
        raise CheckpointError(f'The model index {path} does not exist.')
    try:
        content = load(path)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise CheckpointError(
            f'The model index {path} cannot be read: {e}') from None
    imports = content.get('Import') if isinstance(content, dict) else None
    root = osp.dirname(path)
    return (path, *(osp.join(root, name) for name in imports or ()))


def load_index(path: Optional[str] = None) -> List[ModelInfo]:
    """Every zoo entry, in metafile order, as :class:`ModelInfo`."""
    path = osp.abspath(path or index_path())
    cached = _CACHE.get(path)
    if cached is not None and _stamp(cached[0]) == cached[1]:
        return cached[2]
    root = osp.dirname(path)
    files, entries = _read_index(path)
    models, seen = [], {}
    for model in entries:
        info = _entry(model, root)
        for name in (info.name, *info.aliases):
            if name in seen:
                raise CheckpointError(
                    f'Model name {name!r} is used twice in the zoo '
                    f'({seen[name]} and {info.metafile}).')
            seen[name] = info.metafile
        models.append(info)
    _CACHE.clear()
    _CACHE[path] = (files, _stamp(files), models)
    return models


def find_model(name: str, index: Optional[str] = None) -> ModelInfo:
    """The zoo entry named ``name`` (or one of its aliases)."""
    models = load_index(index)
    for info in models:
        if name == info.name or name in info.aliases:
            return info
    names = [m.name for m in models]
    close = difflib.get_close_matches(
        name, names + [a for m in models for a in m.aliases], n=3)
    hint = f' Did you mean: {", ".join(close)}?' if close else ''
    raise UnknownModelError(
        f'{name!r} is not in the model zoo.{hint} mmvan.apis.list_models() '
        f'lists the {len(names)} names.')


def find_by_url(url: str, index: Optional[str] = None) -> Optional[ModelInfo]:
    """The zoo entry whose ``Weights`` is ``url``, or None."""
    try:
        models = load_index(index)
    except (OSError, CheckpointError):
        return None
    for info in models:
        if info.weights == url:
            return info
    return None


def list_models(pattern: Optional[str] = None,
                task: Optional[str] = None,
                index: Optional[str] = None) -> List[str]:
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
