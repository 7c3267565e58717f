# Copyright (c) mmvan contributors. All rights reserved.
"""Safe checkpoint loading for mmengine on torch >= 2.6.

torch loads with ``weights_only=True``, which refuses every Python type that
is not on its allow-list. mmengine 0.10.7 writes a few such types into its
checkpoints (the message hub's ``HistoryBuffer``, numpy arrays, scalars and
dtypes in ``meta``), so ``--resume`` and ``tools/test.py`` would fail.

:func:`setup_safe_loading` (called by
:func:`mmvan.apis.register_all_modules`) allow-lists exactly those types
with torch's public ``add_safe_globals`` and registers mmengine's local-file
checkpoint scheme (``CheckpointLoader.register_scheme``) as
:func:`safe_torch_load`, which calls ``torch.load(..., weights_only=True)``
explicitly and turns its failures into one clear message. The safe loader
stays on: a checkpoint that asks for anything else (a function call, an
arbitrary class) is refused before any of it runs, and the message names
what it asked for (``posix.system``), also where torch's unpickler stopped
earlier at a pickle protocol it does not read (the file's pickles are then
read with :mod:`pickletools`, which imports and runs nothing, up to a
bounded number of opcodes: nothing past them is named).

Reading, converting and loading checkpoints into models is
:mod:`mmvan.zoo.checkpoint`'s; this module holds what every layer may use.
"""
import contextlib
import io
import os.path as osp
import pickle
import pickletools
import re
import struct
import threading
import warnings
import zipfile
from typing import Sequence

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from .errors import CheckpointError

try:
    from numpy._core import multiarray, numeric
except ImportError:  # numpy < 2
    from numpy.core import multiarray, numeric


def _history_buffer_statistics():
    """The names of the ``HistoryBuffer`` statistics methods that a
    checkpoint may refer to."""
    names = {'min', 'max', 'current', 'mean'}
    names.update(HistoryBuffer._statistics_methods)
    return {name for name in names if not name.startswith('_')}


def _history_buffer_getattr(obj, name):
    """Stand-in for ``builtins.getattr`` inside checkpoints.

    A pickled ``HistoryBuffer`` refers to its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``. The real ``getattr`` would let a
    crafted file reach any attribute of any allowed object, so only those
    lookups are answered.
    """
    if (obj is HistoryBuffer and isinstance(name, str)
            and name in _history_buffer_statistics()):
        value = getattr(HistoryBuffer, name)
        if callable(value):
            return value
    raise pickle.UnpicklingError(
        f'Unsupported global: GLOBAL builtins.getattr({obj!r}, {name!r}) '
        f'is not a HistoryBuffer statistics method.')


def mmengine_safe_globals() -> list:
    """The Python objects mmengine 0.10.x pickles into its checkpoints."""
    dtype_types = {type(np.dtype(code)) for code in '?bBhHiIlLqQefdgFDGUSM'}
    return [
        HistoryBuffer,
        np.ndarray,
        np.dtype,
        multiarray._reconstruct,
        multiarray.scalar,
        *sorted(dtype_types, key=lambda t: t.__name__),
        (_history_buffer_getattr, 'builtins.getattr'),
    ]


# One load at a time changes torch's allow-list (a process-wide list).
_ALLOW_LOCK = threading.RLock()


@contextlib.contextmanager
def _allowed(objects):
    """Allow ``objects`` for the loads inside, and leave torch's allow-list
    as it was found afterwards.

    torch's ``safe_globals`` context removes what it lists when it exits,
    even entries that were allowed before it (by
    :func:`register_safe_globals`, or by the user): only the missing ones
    are listed, under a lock.
    """
    safe = getattr(torch.serialization, 'safe_globals', None)
    listed = getattr(torch.serialization, 'get_safe_globals', None)
    if safe is None or listed is None:
        yield
        return
    with _ALLOW_LOCK:
        present = listed()
        missing = [obj for obj in objects if obj not in present]
        if not missing:
            yield
            return
        with safe(missing):
            yield


# torch's weights-only unpickler reads pickle protocol 2 (torch.save's
# default) and stops at the first opcode of a newer one.
_WEIGHTS_ONLY_PROTOCOL = 2
# How torch's weights-only unpickler (and _history_buffer_getattr) names a
# refused global: 'GLOBAL posix.system', 'GLOBAL mything.Foo'.
_GLOBAL_IN_MESSAGE = re.compile(r'\bGLOBAL ([A-Za-z_][\w.]*)')
_NAME = re.compile(r'^[A-Za-z_][\w.]*$')
# Opcodes that push a string (the module and name of a STACK_GLOBAL).
_STRINGS = {
    'STRING', 'BINSTRING', 'SHORT_BINSTRING', 'UNICODE', 'BINUNICODE',
    'SHORT_BINUNICODE', 'BINUNICODE8'
}

# The most opcodes a scan reads (all the pickles of a file together): a
# large pickle is rejected without reading all of it. What lies past them is
# not known, and so never named.
_SCAN_OPCODES = 300_000


class _Bounded:
    """A binary file whose reads never ask for more than what is left of
    it (a random length in a broken pickle would allocate that much) and
    whose lines are short."""

    def __init__(self, stream, size):
        self.stream, self.size = stream, size
        self.position = stream.tell()

    def read(self, n=-1):
        left = max(self.size - self.position, 0)
        data = self.stream.read(left if n is None or n < 0 else min(n, left))
        self.position += len(data)
        return data

    def readline(self):
        line = self.stream.readline(4096)
        self.position += len(line)
        return line


class _PickleScan:
    """What the pickles of a checkpoint ask to import, read with
    :mod:`pickletools` (nothing is unpickled, imported or run)."""

    def __init__(self):
        self.protocol = 0
        self.globals = []
        # The first value of each pickle read (torch.save's legacy format
        # starts with a pickle of its magic number).
        self.first_values = []
        # Whether the pickles are those of torch.save's formats (set by
        # _scan_pickles).
        self.torch_format = False
        # The opcodes read; whether the scan stopped at _SCAN_OPCODES.
        self.opcodes = 0
        self.stopped = False

    def add(self, stream):
        """Read one pickle of ``stream``, up to :data:`_SCAN_OPCODES` in
        all (then ``stopped``: what was read is kept); False when it is not
        one well-formed pickle (what was read of it is then not kept)."""
        protocol, found, pushed, memo = 0, [], [], {}
        values = []
        try:
            for op, arg, _ in pickletools.genops(stream):
                self.opcodes += 1
                if self.opcodes > _SCAN_OPCODES:
                    self.stopped = True
                    break
                name = op.name
                if not values and name not in ('PROTO', 'FRAME'):
                    values.append(arg)
                if name == 'PROTO':
                    protocol = arg
                elif name == 'GLOBAL':
                    found.append(arg.replace(' ', '.', 1))
                elif name == 'STACK_GLOBAL':
                    module, attr = (pushed[-2:] + [None, None])[:2]
                    found.append(f'{module}.{attr}')
                elif name in _STRINGS:
                    pushed.append(str(arg))
                elif name in ('BINGET', 'LONG_BINGET', 'GET'):
                    pushed.append(memo.get(arg))
                elif name == 'MEMOIZE' and pushed:
                    memo[len(memo)] = pushed[-1]
                elif name in ('BINPUT', 'LONG_BINPUT', 'PUT') and pushed:
                    memo[arg] = pushed[-1]
                elif name not in ('FRAME', 'MEMOIZE', 'BINPUT', 'LONG_BINPUT',
                                  'PUT'):
                    pushed.append(None)
        except (ValueError, EOFError, UnicodeDecodeError, struct.error):
            return False
        if not all(_NAME.match(path) for path in found):
            return False
        self.protocol = max(self.protocol, protocol)
        self.globals.extend(found)
        self.first_values.append(values[0] if values else None)
        return True

    def refused(self, allowed):
        """The globals that the weights-only unpickler would refuse, with
        ``allowed`` added to what it allows (and the names that pickle
        protocols 4 and 5 give those objects)."""
        unpickler = getattr(torch, '_weights_only_unpickler', None)
        known = getattr(unpickler, '_get_allowed_globals', None)
        users = getattr(unpickler, '_get_user_allowed_globals', None)
        if known is None or users is None:
            return []
        with _allowed(allowed):
            objects = {**known(), **users()}
        names = set(objects) | _newer_protocol_names(objects.values())
        return [path for path in self.globals if path not in names]


def _full_name(obj):
    return f'{obj.__module__}.{obj.__qualname__}'


def _newer_protocol_names(objects):
    """The names under which pickle protocols 4 and 5 write what the
    weights-only load allows among ``objects`` at protocol 2 (under other
    names): ``HistoryBuffer.mean`` for ``getattr(HistoryBuffer, 'mean')``
    (:func:`_history_buffer_getattr`), numpy's ``_frombuffer`` for the
    ``_reconstruct`` of an array whose bytes protocol 5 writes as a
    buffer."""
    objects = list(objects)
    names = set()
    if any(obj is _history_buffer_getattr for obj in objects):
        names.update(f'{_full_name(HistoryBuffer)}.{name}'
                     for name in _history_buffer_statistics())
    if any(obj is multiarray._reconstruct for obj in objects):
        names.add(_full_name(numeric._frombuffer))
    return names


def _scan_pickles(filename):
    """A :class:`_PickleScan` of ``filename``'s pickles: ``data.pkl`` of a
    zip checkpoint, or the pickles one after another of a legacy checkpoint
    or of a plain pickle file; None when no well-formed pickle is there."""
    scan = _PickleScan()
    try:
        if zipfile.is_zipfile(filename):
            with zipfile.ZipFile(filename) as archive:
                names = [
                    name for name in archive.namelist()
                    if name == 'data.pkl' or name.endswith('/data.pkl')
                ]
                if len(names) != 1:
                    return None
                with archive.open(names[0]) as stream:
                    ok = scan.add(io.BytesIO(stream.read()))
            scan.torch_format = True
            return scan if ok else None
        with open(filename, 'rb') as raw:
            stream = _Bounded(raw, osp.getsize(filename))
            # Legacy torch.save: magic number, protocol, system info, the
            # object, the storage keys; then the storages' raw bytes.
            read = 0
            while read < 5 and not scan.stopped and scan.add(stream):
                read += 1
        # A plain pickle (pickle.dump's file) is none of torch.save's.
        scan.torch_format = scan.first_values[:1] == [
            torch.serialization.MAGIC_NUMBER
        ]
        return scan if read else None
    except (OSError, zipfile.BadZipFile, RuntimeError):
        return None


def register_safe_globals() -> None:
    """Allow-list the types of :func:`mmengine_safe_globals` for torch's
    ``weights_only`` unpickler. Nothing else is allowed."""
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(mmengine_safe_globals())


def safe_torch_load(filename,
                    map_location=None,
                    extra_globals: Sequence = (),
                    mmap: bool = False) -> object:
    """``torch.load`` with the safe loader forced on and clear errors.

    The objects of :func:`mmengine_safe_globals` (and ``extra_globals``) are
    allowed for this load only, whether or not :func:`setup_safe_loading`
    ran. ``mmap=True`` maps the tensors of a checkpoint (of torch's zip
    format) instead of reading them: for a caller that reads only its
    ``meta`` or message hub.

    Raises:
        CheckpointError: when the file is missing, truncated, not a PyTorch
            checkpoint, or asks to run or build something that is not
            allow-listed.
    """
    filename = osp.expanduser(str(filename))
    if osp.isdir(filename):
        raise CheckpointError(
            f'Checkpoint {filename} is a folder, not a checkpoint file; give '
            f'the file in it.')
    if not osp.isfile(filename):
        raise CheckpointError(
            f'Checkpoint {filename} does not exist. Check the path, or '
            f'download the checkpoint first.')
    allowed = [*mmengine_safe_globals(), *extra_globals]
    try:
        with _allowed(allowed), warnings.catch_warnings():
            # torch's note on a pickle protocol other than 2: the message
            # below says what that means for the load.
            warnings.filterwarnings(
                'ignore',
                message='Detected pickle protocol',
                category=UserWarning)
            return torch.load(
                filename,
                map_location=map_location,
                weights_only=True,
                # torch maps zip checkpoints only (not the legacy format).
                **(dict(mmap=True)
                   if mmap and zipfile.is_zipfile(filename) else {}))
    except pickle.UnpicklingError as e:
        lines = [line.strip() for line in str(e).splitlines()]
        named = next(
            (m.group(1) for m in map(_GLOBAL_IN_MESSAGE.search, lines) if m),
            None)
        scan = None if named else _scan_pickles(filename)
        refused = scan.refused(allowed) if scan is not None else []
        if refused:
            named = refused[0]
        if named is not None:
            raise CheckpointError(
                f'Refused to load {filename}: it asks to import and run '
                f'{named}, which a weights-only load does not allow (loading '
                f'it could run any code). mmvan loads checkpoints with '
                f'torch\'s weights-only loader only. Only if you trust the '
                f'file: convert it with tools/model_converters/, or load it '
                f'yourself with torch.load(path, weights_only=False) and save '
                f'its tensors again with torch.save(state_dict, path).'
            ) from None
        causes = ('load key', 'EOF', 'Unsupported operand')
        reason = next(
            (line for line in lines if any(key in line for key in causes)),
            lines[-1] if lines else '')
        if scan is not None and scan.torch_format and \
                scan.protocol > _WEIGHTS_ONLY_PROTOCOL:
            # A well-formed checkpoint of allowed objects that torch's
            # weights-only unpickler cannot read (it reads protocol 2).
            raise CheckpointError(
                f'Checkpoint {filename} was saved with pickle protocol '
                f'{scan.protocol}, which torch\'s weights-only loader does '
                f'not read. Only if you trust the file: load it '
                f'with torch.load(path, weights_only=False) and save it '
                f'again with torch.save(checkpoint, path) (its default '
                f'protocol).') from None
        # Not a pickle that asks for anything: just not a checkpoint.
        raise CheckpointError(
            f'Checkpoint {filename} is unreadable: it is truncated, '
            f'corrupt or not a PyTorch checkpoint ({reason}). Download '
            f'or copy it again.') from None
    except (EOFError, zipfile.BadZipFile) as e:
        raise CheckpointError(
            f'Checkpoint {filename} is truncated or corrupt ({e}). '
            f'Download or copy it again.') from None
    except (IndexError, KeyError, UnicodeDecodeError, ValueError,
            OverflowError, struct.error) as e:
        # Bytes that are no pickle at all reach torch's unpickler's
        # bookkeeping (its memo, its stack, a string it decodes) first.
        raise CheckpointError(
            f'Checkpoint {filename} is unreadable: it is truncated, corrupt '
            f'or not a PyTorch checkpoint ({type(e).__name__}: {e}). '
            f'Download or copy it again.') from None
    except OSError as e:
        raise CheckpointError(
            f'Cannot read checkpoint {filename}: {e.strerror or e}. Make it '
            f'readable (chmod a+r) or use a copy you can read.') from None
    except RuntimeError as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        first = lines[0] if lines else type(e).__name__
        first = re.sub(r'\s*\(Could this error message be improved\?.*', '',
                       first)
        if re.search(r'\bCUDA\b|device', first):
            raise CheckpointError(
                f'Checkpoint {filename} cannot be loaded on this machine '
                f'({first}).') from None
        # torch's zip reader: a missing record, a broken archive, a file
        # outside the archive's folder, a bad header.
        raise CheckpointError(
            f'Checkpoint {filename} is truncated, corrupt or not a PyTorch '
            f'checkpoint ({first}). Download or copy it again.') from None


def key_mismatches(state_dict, expected_shapes) -> tuple:
    """Compare a state dict with the keys and shapes a model expects.

    Returns:
        tuple[list]: ``missing`` (expected keys not in ``state_dict``),
        ``unexpected`` (keys of ``state_dict`` not expected) and ``wrong``
        (``'key: (shape) vs (expected shape)'`` for keys in both).
    """
    missing = [k for k in expected_shapes if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected_shapes]
    wrong = [
        f'{k}: {tuple(v.shape)} vs {tuple(expected_shapes[k])}'
        for k, v in state_dict.items()
        if k in expected_shapes and tuple(v.shape) != tuple(expected_shapes[k])
    ]
    return missing, unexpected, wrong


def _load_from_local(filename, map_location):
    return safe_torch_load(filename, map_location=map_location)


def register_local_scheme() -> None:
    """Route mmengine's local checkpoint loading through
    :func:`safe_torch_load` (mmengine's public
    ``CheckpointLoader.register_scheme``, for the empty prefix that local
    paths fall under)."""
    CheckpointLoader.register_scheme(
        prefixes='', loader=_load_from_local, force=True)


def setup_safe_loading() -> None:
    """Allow-list mmengine's checkpoint objects for torch's safe loader
    and route mmengine's local checkpoint loads through it."""
    register_safe_globals()
    register_local_scheme()
