# Copyright (c) mmvan contributors. All rights reserved.
import os
import os.path as osp
import pickle
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner, load_checkpoint

from mmvan.apis import register_all_modules
from mmvan.utils import CheckpointError, safe_torch_load


@pytest.fixture(autouse=True, scope='module')
def safe_loading():
    """mmengine's checkpoint loads go through mmvan's safe loader once
    mmvan's extension points are switched on."""
    register_all_modules()


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.bn = nn.BatchNorm1d(1)

    def forward(self, inputs, labels=None, mode='tensor'):
        inputs = torch.stack(inputs) if isinstance(inputs, list) else inputs
        out = self.bn(self.linear(inputs))
        if mode == 'loss':
            labels = torch.stack(labels) if isinstance(labels, list) else \
                labels
            return dict(loss=((out.squeeze(1) - labels)**2).mean())
        return out


class ToyDataset(torch.utils.data.Dataset):
    metainfo = dict(classes=('a', 'b'), dtype=torch.float32)

    def __len__(self):
        return 8

    def __getitem__(self, i):
        x = torch.tensor([i / 8., 1 - i / 8.])
        return dict(inputs=x, labels=x.sum())


def _load_error(path):
    """The message of the :class:`CheckpointError` that loading ``path``
    raises."""
    with pytest.raises(CheckpointError) as err:
        safe_torch_load(path)
    return str(err.value)


def make_runner(work_dir, **kwargs):
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyDataset(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            batch_size=4,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=kwargs.pop('max_epochs', 1)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
        default_scope='mmengine',
        **kwargs)


@pytest.fixture(scope='module')
def runner_checkpoint(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('runner')
    make_runner(work_dir).train()
    path = osp.join(work_dir, 'epoch_1.pth')
    assert osp.isfile(path)
    return work_dir, path


@pytest.mark.slow
def test_runner_checkpoint_needs_allow_list(runner_checkpoint):
    """Without mmvan's allow-list, torch's safe loader refuses mmengine's
    checkpoints."""
    _, path = runner_checkpoint
    allowed = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        with pytest.raises(Exception, match='Unsupported global|GLOBAL'):
            torch.load(path, weights_only=True)
    finally:
        torch.serialization.add_safe_globals(allowed)


@pytest.mark.slow
def test_runner_checkpoint_loads_and_resumes(runner_checkpoint):
    work_dir, path = runner_checkpoint
    ckpt = safe_torch_load(path)
    assert ckpt['meta']['epoch'] == 1
    assert 'message_hub' in ckpt and 'optimizer' in ckpt
    model = ToyModel()
    load_checkpoint(model, path, map_location='cpu', strict=True)
    # --resume: continues from epoch 1 to 2.
    runner = make_runner(work_dir, max_epochs=2, resume=True, load_from=path)
    runner.train()
    assert runner.epoch == 2
    assert osp.isfile(osp.join(work_dir, 'epoch_2.pth'))


class _Exploit:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_malicious_checkpoint_refused(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': _Exploit(marker)}, path)
    with pytest.raises(CheckpointError, match='Refused to load') as e:
        load_checkpoint(nn.Linear(1, 1), str(path))
    assert 'system' in str(e.value)
    with pytest.raises(CheckpointError, match='Refused to load'):
        safe_torch_load(path)
    assert not marker.exists()


def test_truncated_and_missing_checkpoint(tmp_path):
    path = tmp_path / 'w.pth'
    torch.save({'w': torch.ones(1000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated'):
        load_checkpoint(nn.Linear(1, 1), str(path))
    path.write_bytes(b'not a checkpoint at all')
    with pytest.raises(CheckpointError, match='truncated|corrupt'):
        safe_torch_load(path)
    with pytest.raises(CheckpointError, match='does not exist'):
        safe_torch_load(tmp_path / 'missing.pth')


def test_loading_leaves_torchs_allow_list_as_it_was(tmp_path):
    # register_all_modules (here: the session fixture) allow-lists
    # mmengine's objects for every torch.load; mmvan's own loads allow them
    # for themselves and must not take the process-wide entries away (nor
    # leave their own behind).
    path = tmp_path / 'history.pth'
    torch.save({'message_hub': HistoryBuffer([1.0, 2.0], [1, 1])}, path)
    listed = torch.serialization.get_safe_globals
    assert HistoryBuffer in listed()
    before = list(listed())
    assert isinstance(safe_torch_load(str(path))['message_hub'], HistoryBuffer)
    assert list(listed()) == before
    assert isinstance(
        torch.load(path, weights_only=True)['message_hub'], HistoryBuffer)
    with torch.serialization.safe_globals([]):
        # Nothing allowed globally: the load still allows what it needs,
        # then nothing is left behind.
        torch.serialization.clear_safe_globals()
        safe_torch_load(str(path))
        assert listed() == []
    register_all_modules()
    assert HistoryBuffer in listed()


def test_random_bytes_are_an_unreadable_checkpoint(tmp_path):
    # Bytes that are no checkpoint at all make torch's unpickler fail in
    # many ways (its memo, its stack, a string it decodes); each must end
    # in the one message, whatever the bytes are.
    rng = np.random.default_rng(0)
    path = tmp_path / 'random.pth'
    for _ in range(400):
        path.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
        with warnings.catch_warnings():
            # torch notes the odd pickle protocol number it read first.
            warnings.simplefilter('ignore', UserWarning)
            with pytest.raises(CheckpointError, match='corrupt') as err:
                safe_torch_load(str(path))
        # The cause, not torch's pointer to its documentation.
        assert 'documentation' not in str(err.value)


def test_force_no_weights_only_never_set():
    import mmvan.converters  # noqa: F401
    import mmvan.models  # noqa: F401
    assert 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' not in os.environ
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    for folder in ('mmvan', 'tools'):
        for dirpath, _, files in os.walk(osp.join(root, folder)):
            for name in files:
                if name.endswith(('.py', '.sh')):
                    with open(osp.join(dirpath, name)) as f:
                        assert 'TORCH_FORCE_NO_WEIGHTS_ONLY' not in f.read(), \
                            name


class _GetattrEscape:
    """Pickles as ``getattr(HistoryBuffer, '__init__')`` -- a first step
    towards reaching arbitrary globals through an allowed class."""

    def __reduce__(self):
        from mmengine.logging.history_buffer import HistoryBuffer
        return (getattr, (HistoryBuffer, '__init__'))


def test_getattr_limited_to_history_buffer_statistics(tmp_path):
    from mmengine.logging.history_buffer import HistoryBuffer
    ok = tmp_path / 'ok.pth'
    buf = HistoryBuffer()
    buf.update(1.5)
    torch.save({'buf': buf}, ok)
    loaded = safe_torch_load(ok)['buf']
    assert loaded.mean() == 1.5
    bad = tmp_path / 'bad.pth'
    torch.save({'x': _GetattrEscape()}, bad)
    with pytest.raises(CheckpointError, match='Refused to load'):
        safe_torch_load(bad)


class _Unknown:
    """A class no weights-only load allows."""

    def __init__(self):
        self.value = 1


def _system_pickles(tmp_path, marker):
    """Files whose pickle asks to run os.system: torch.save's default
    protocol, torch.save with protocol 4 and 5, plain pickle files."""
    paths = []
    for protocol in (2, 4, 5):
        path = tmp_path / f'torch_p{protocol}.pth'
        torch.save(
            {
                'state_dict': {
                    'w': torch.ones(2)
                },
                'payload': _Exploit(marker)
            },
            path,
            pickle_protocol=protocol)
        paths.append(path)
        path = tmp_path / f'plain_p{protocol}.pkl'
        path.write_bytes(pickle.dumps(_Exploit(marker), protocol=protocol))
        paths.append(path)
    return paths


@pytest.mark.parametrize('kind', ['function', 'class'])
def test_refused_checkpoint_names_what_it_asks_for(tmp_path, kind):
    # A pickle that refers to os.system (which the loader must never run)
    # or to an unknown class is refused by name, whatever pickle protocol
    # wrote it; never reported as a corrupt file.
    marker = tmp_path / 'pwned'
    if kind == 'function':
        paths = _system_pickles(tmp_path, marker)
        wanted = f'{os.system.__module__}.system'  # posix.system on Linux
    else:
        paths = []
        for protocol in (2, 4):
            path = tmp_path / f'unknown_p{protocol}.pth'
            torch.save({'meta': _Unknown()}, path, pickle_protocol=protocol)
            paths.append(path)
        wanted = f'{__name__}._Unknown'
    for path in paths:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', UserWarning)
            with pytest.raises(CheckpointError) as err:
                safe_torch_load(path)
        message = str(err.value)
        assert message.startswith(f'Refused to load {path}: it asks to '
                                  f'import and run {wanted}, which a '
                                  f'weights-only load does not allow'), \
            message
        assert 'Only if you trust the file' in message
        assert 'torch.load(path, weights_only=False)' in message
        assert 'corrupt' not in message and 'unreadable' not in message
        assert 'TORCH_FORCE' not in message
    assert not marker.exists()


def test_newer_pickle_protocol_is_named_and_corrupt_stays_corrupt(tmp_path):
    # A plain checkpoint written with pickle protocol 4: not corrupt, but
    # torch's weights-only loader reads protocol 2 only.
    path = tmp_path / 'p4.pth'
    torch.save({'state_dict': {'w': torch.ones(3)}}, path, pickle_protocol=4)
    message = _load_error(path)
    assert 'saved with pickle protocol 4' in message, message
    assert 'corrupt' not in message and 'Refused' not in message
    # Cut short, the same pickle is corrupt, as before.
    data = pickle.dumps({'w': [1.0] * 100}, protocol=4)
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(
            CheckpointError,
            match='unreadable: it is truncated, '
            'corrupt or not a PyTorch checkpoint'):
        safe_torch_load(path)


@pytest.mark.parametrize('protocol', [4, 5])
def test_plain_pickle_of_a_newer_protocol_is_not_a_checkpoint(
        tmp_path, protocol):
    # pickle.dump's file (no torch.save format around it): torch.load
    # cannot read it with weights_only=False either ('Invalid magic
    # number'), so re-saving it that way is no advice to give.
    path = tmp_path / 'weights.pkl'
    path.write_bytes(pickle.dumps({'w': [1.0, 2.0]}, protocol=protocol))
    with pytest.raises(RuntimeError, match='magic number'):
        torch.load(path, weights_only=False)
    message = _load_error(path)
    assert message.startswith(f'Checkpoint {path} is unreadable: it is '
                              f'truncated, corrupt or not a PyTorch '
                              f'checkpoint'), message
    assert 'weights_only=False' not in message


@pytest.mark.parametrize('protocol', [4, 5])
def test_runner_checkpoint_of_a_newer_protocol_is_named_not_refused(
        runner_checkpoint, tmp_path, protocol):
    # An mmengine checkpoint saved again with pickle protocol 4 or 5 names
    # the objects mmvan allows at protocol 2 in those protocols' way
    # (HistoryBuffer.min for getattr(HistoryBuffer, 'min'), numpy's
    # _frombuffer for an array): only the protocol stands in the way.
    _, src = runner_checkpoint
    path = tmp_path / f'epoch_1_p{protocol}.pth'
    torch.save(safe_torch_load(src), path, pickle_protocol=protocol)
    message = _load_error(path)
    assert message.startswith(f'Checkpoint {path} was saved with pickle '
                              f'protocol {protocol}, which torch\'s '
                              f'weights-only loader does not read'), message
    assert 'Refused' not in message
    # What the load allows at protocol 2 of HistoryBuffer is its
    # statistics: any other of its attributes is still refused by name.
    path = tmp_path / f'init_p{protocol}.pth'
    torch.save({'f': HistoryBuffer.__init__}, path, pickle_protocol=protocol)
    message = _load_error(path)
    assert message.startswith(
        f'Refused to load {path}: it asks to import and run '
        f'mmengine.logging.history_buffer.HistoryBuffer.__init__, '), message


def _count_opcodes(monkeypatch):
    """The pickle opcodes read by the loads from now on (a list whose
    length grows)."""
    import pickletools
    read, genops = [], pickletools.genops

    def counted(*args, **kwargs):
        for op in genops(*args, **kwargs):
            read.append(None)
            yield op

    monkeypatch.setattr(pickletools, 'genops', counted)
    return read


def test_a_large_pickle_is_rejected_without_reading_all_of_it(
        tmp_path, monkeypatch):
    # A plain pickle of protocol 4 with a million and a half opcodes (a
    # list of floats): the scan of what it asks to import stops early, and
    # what it says holds for the whole file.
    path = tmp_path / 'floats.pkl'
    path.write_bytes(pickle.dumps([0.5] * 1_500_000, protocol=4))
    read = _count_opcodes(monkeypatch)
    message = _load_error(path)
    assert len(read) < 1_000_000
    assert message.startswith(
        f'Checkpoint {path} is unreadable: it is truncated, corrupt or not '
        f'a PyTorch checkpoint'), message
    # A checkpoint (torch.save's format) past that many opcodes: its
    # protocol is named; a refused global read before the stop still is.
    big = [0.5] * 600_000
    path = tmp_path / 'p4.pth'
    torch.save({'w': big}, path, pickle_protocol=4)
    del read[:]
    message = _load_error(path)
    assert len(read) < 500_000
    assert message.startswith(
        f'Checkpoint {path} was saved with pickle protocol 4, '), message
    marker = tmp_path / 'pwned'
    checkpoint = dict(payload=_Exploit(marker), w=big)
    torch.save(checkpoint, path, pickle_protocol=4)
    message = _load_error(path)
    assert message.startswith(
        f'Refused to load {path}: it asks to import and run '
        f'{os.system.__module__}.system, '), message
    assert not marker.exists()
