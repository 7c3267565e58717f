# Copyright (c) mmvan contributors. All rights reserved.
"""Keep mmengine's per-parameter initialisation report out of the console.

``BaseModule.init_weights`` reports how every parameter was initialised.
In a training run the report goes to the log file, where it belongs; without
a log file (a model built in a script, a benchmark, a test) mmengine prints
one INFO line per parameter, hundreds of lines before any result. Here the
report still goes to every log file, and without one it is logged at DEBUG
level, so it shows only when asked for.

A Runner's console is shortened too (:func:`short_console`): the log file
keeps everything.
"""
import contextlib
import logging
import os
import re
import sys


def _dump_init_info(self):
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    files = [h for h in logger.handlers if isinstance(h, logging.FileHandler)]
    for handler in files:
        handler.stream.write(
            'Name of parameter - Initialization information\n')
        for name, param in self.named_parameters():
            handler.stream.write(
                f'\n{name} - {param.shape}: '
                f"\n{self._params_init_info[param]['init_info']} \n")
        handler.stream.flush()
    if not files and logger.isEnabledFor(logging.DEBUG):
        for name, param in self.named_parameters():
            logger.debug(f'{name} - {tuple(param.shape)}: '
                         f"{self._params_init_info[param]['init_info']}")


def quiet_init_report():
    from mmengine.model import BaseModule
    BaseModule._dump_init_info = _dump_init_info


# --- The console of a Runner -------------------------------------------------
#
# mmengine's Runner logs its environment, its whole config, the hook table,
# one line per parameter group option and one line per ``interval``
# iterations, to the console and to the log file alike. The log file keeps
# all of it; the console (mmengine's ``StreamHandler`` of the Runner's
# ``MMLogger``) gets a filter and a shorter formatter: mmvan's own lines,
# warnings and errors, one line per epoch (or per tenth of an iteration-based
# run) and every metrics line. On a terminal the iterations in between are a
# progress line that is overwritten in place.

VERBOSE_ENV = 'MMVAN_VERBOSE'

# mmengine's INFO records shown only in the log file (message prefixes).
_FILE_ONLY = (
    'Config:\n',
    'Hooks will be executed in the following order',
    'paramwise_options -- ',
    'Distributed training is not used',
    'Exp name: ',
    'Saving checkpoint at ',
    'The previous best checkpoint ',
    'Checkpoints will be saved to ',
    'Loads checkpoint by ',
    'per class results:',
    'Converting ground truth to coco format',
    'Panoptic Evaluation Results:',
    'Classwise Panoptic Evaluation Results:',
)
# mmdet's (and mmpose's) COCO metrics around pycocotools' summary, and
# tables (mmseg's per-class IoU).
_FILE_ONLY_RE = re.compile(
    r'^(Evaluating \S+\.\.\.$|\S+_copypaste: |\n\+[-+]+\+\n)')
# Warnings mmengine gives on every run, about its own internals.
_FILE_ONLY_WARNINGS = (
    '"FileClient" will be deprecated',
    '"HardDiskBackend" is the alias of "LocalBackend"',
    'The prefix is not set in metric class',
)
_LOOP_LINE = re.compile(
    r'^(Epoch|Iter)\((train|val|test)\)\s*((?:\[\s*[^\]]*\])+)\s*(.*)$', re.S)
# Fields of mmengine's loop lines the console leaves to the log file.
_TRAIN_DROP = ('base_lr', 'data_time', 'memory')
_METRIC_DROP = ('data_time', 'time', 'memory')


def console_is_verbose(log_level='INFO'):
    """Whether the console keeps mmengine's full output: ``MMVAN_VERBOSE=1``
    (``--verbose`` of the tools) or a ``log_level`` of DEBUG or lower."""
    if os.environ.get(VERBOSE_ENV, '').lower() in ('1', 'true', 'yes', 'on'):
        return True
    level = log_level
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
    return isinstance(level, int) and level <= logging.DEBUG


def _fields(rest):
    """``"a: 1  b: 2 c: 3"`` -> ``[('a', '1'), ('b', '2'), ('c', '3')]``:
    mmengine joins fields with two spaces, learning rates with one; a
    name or a value may hold single spaces (``coco/AP (M)``)."""
    fields = []
    for item in re.split(r'\s{2,}', rest.strip()):
        if not item:
            continue
        if re.fullmatch(r'\S+: \S+(?: \S+: \S+)+', item):
            parts = re.findall(r'(\S+): (\S+)', item)
        elif ': ' in item:
            parts = [tuple(item.split(': ', 1))]
        else:
            parts = [(item, None)]
        fields.extend(parts)
    return fields


def _join(fields, drop):
    return '  '.join(name if value is None else f'{name}: {value}'
                     for name, value in fields
                     if name not in drop and not name.endswith('_copypaste'))


class ShortConsole(logging.Filter):
    """The filter of a Runner's console handler (see above).

    mmengine logs the last iteration of an epoch only when the logging
    interval divides the epoch; the epoch's line is its last logged
    iteration, shown at :meth:`end_epoch` (the Runner calls it after each
    training epoch) or when the next epoch starts.

    Args:
        handler (logging.StreamHandler): the console handler.
        max_epochs (int, optional): shown as ``epoch 3/12``.
    """

    def __init__(self, handler, max_epochs=None):
        super().__init__()
        self.handler = handler
        self.max_epochs = max_epochs
        try:
            self.live = handler.stream.isatty()
        except (AttributeError, ValueError):
            self.live = False
        self._progress = False
        self._pending = None
        self._tenth = 0
        self._train_iter = None

    def filter(self, record):
        try:
            text = self._console_text(record)
        except Exception:  # noqa: B902  (never let the console stop a run)
            text = True
        if text is None:
            return False
        if text is not True:
            record.mmvan_console = text
        self.end_epoch()
        return True

    def end_epoch(self):
        """Show the last logged iteration of the epoch, if not yet shown."""
        record, self._pending = self._pending, None
        self.clear_progress()
        if record is not None:
            self.handler.acquire()
            try:
                self.handler.emit(record)
            finally:
                self.handler.release()

    def _console_text(self, record):
        """``None``: not on the console; ``True``: as it is; else the
        shorter text to show."""
        if record.levelno > logging.INFO:
            if record.levelno == logging.WARNING and str(
                    record.msg).startswith(_FILE_ONLY_WARNINGS):
                return None
            return True
        if getattr(record, 'mmvan_stdout', False):
            return None
        message = record.getMessage()
        if message.startswith(_FILE_ONLY) or _FILE_ONLY_RE.match(message) or (
                message.startswith('\n---')
                and 'System environment:' in message[:200]):
            return None
        match = _LOOP_LINE.match(message)
        if match is None:
            return True
        unit, mode, brackets, rest = match.groups()
        counts = re.findall(r'\[\s*([^\]]*?)\s*\]', brackets)
        fields = _fields(rest)
        if mode == 'train':
            return self._train_line(record, unit, counts, fields)
        return self._eval_line(unit, mode, counts, fields)

    def _epoch(self, epoch):
        if self.max_epochs:
            return f'epoch {epoch}/{self.max_epochs}'
        return f'epoch {epoch}'

    def _train_line(self, record, unit, counts, fields):
        i, n = (int(x) for x in counts[-1].split('/'))
        # The losses first, the timing last.
        fields.sort(key=lambda f: 0 if f[0].startswith('loss') else 2
                    if f[0] in ('time', 'eta') else 1)
        text = _join(fields, _TRAIN_DROP)
        if unit == 'Epoch':
            where = self._epoch(counts[0])
            pending = self._pending
            if pending is not None and pending.mmvan_epoch != counts[0]:
                self.end_epoch()
            if i >= n:
                self._pending = None
                return f'{where}  {text}'
            record.mmvan_console = f'{where}  {text}'
            record.mmvan_epoch = counts[0]
            self._pending = record
            return self.show_progress(f'{where} [{i}/{n}]  {text}')
        # An iteration-based run: a line per tenth of it.
        self._train_iter = f'iter {i}/{n}'
        tenth = i * 10 // n
        if i >= n or tenth > self._tenth:
            self._tenth = tenth
            return f'{self._train_iter}  {text}'
        return self.show_progress(f'{self._train_iter}  {text}')

    def _eval_line(self, unit, mode, counts, fields):
        name = 'validation' if mode == 'val' else 'test'
        if unit == 'Epoch' and mode == 'val' and len(counts) > 1:
            where = f'{self._epoch(counts[0])}  {name}'
        elif unit == 'Iter' and mode == 'val' and self._train_iter:
            where = f'{self._train_iter}  {name}'
        else:
            where = name
        if any(key == 'eta' for key, _ in fields):
            return self.show_progress(f'{where} [{counts[-1]}]  ' +
                                      _join(fields, _TRAIN_DROP))
        return f'{where}  {_join(fields, _METRIC_DROP) or "no metrics"}'

    def show_progress(self, text):
        """Overwrite the progress line (on a terminal); never a record."""
        if self.live:
            import shutil
            width = shutil.get_terminal_size().columns - 1
            try:
                self.handler.stream.write('\r' + text[:width] + '\033[K')
                self.handler.stream.flush()
                self._progress = True
            except (OSError, ValueError):
                pass
        return None

    def clear_progress(self):
        if self._progress:
            self._progress = False
            try:
                self.handler.stream.write('\r\033[K')
            except (OSError, ValueError):
                pass


def _short_formatter():
    from mmengine.logging.logger import MMFormatter

    class ShortFormatter(MMFormatter):
        """``HH:MM:SS message``; the level is named from WARNING on."""

        def __init__(self):
            super().__init__(color=True, datefmt='%H:%M:%S')
            self.info_format = self.debug_format = '%(asctime)s %(message)s'
            for level in ('WARNING', 'ERROR'):
                prefix = self._get_prefix(level, True)
                fmt = f'%(asctime)s {prefix}: %(message)s'
                if level == 'ERROR':
                    self.err_format = fmt
                else:
                    self.warn_format = fmt

        def format(self, record):
            text = getattr(record, 'mmvan_console', None)
            if text is not None:
                # A copy: the log file formats the record as it came.
                record = logging.makeLogRecord(
                    dict(record.__dict__, msg=text, args=None))
            return super().format(record)

    return ShortFormatter()


def short_console(logger, max_epochs=None):
    """Give ``logger``'s console handlers (not its file handlers) the
    :class:`ShortConsole` filter and a short formatter; the log file keeps
    every record as mmengine writes it. Returns the filters installed."""
    installed = []
    for handler in logger.handlers:
        if not isinstance(handler, logging.StreamHandler) or isinstance(
                handler, logging.FileHandler):
            continue
        if any(isinstance(f, ShortConsole) for f in handler.filters):
            continue
        console = ShortConsole(handler, max_epochs=max_epochs)
        handler.addFilter(console)
        handler.setFormatter(_short_formatter())
        installed.append(console)
    return installed


class _LogWriter:
    """A stdout whose lines become INFO records of ``logger`` that only
    the log file shows."""

    def __init__(self, logger, stream):
        self.logger = logger
        self.stream = stream
        self.buffer = ''

    def __getattr__(self, name):  # encoding, fileno, ...
        return getattr(self.stream, name)

    def write(self, text):
        self.buffer += text
        *lines, self.buffer = self.buffer.split('\n')
        for line in lines:
            if line.strip():
                self.logger.info(line.rstrip(), extra=dict(mmvan_stdout=True))
        return len(text)

    def flush(self):
        """Lines are logged whole (see :meth:`close`)."""

    def close(self):
        if self.buffer.strip():
            self.logger.info(
                self.buffer.rstrip(), extra=dict(mmvan_stdout=True))
        self.buffer = ''

    def isatty(self):
        return False


@contextlib.contextmanager
def stdout_to_log():
    """With a short console (:func:`short_console`), what is printed
    meanwhile (pycocotools' index and summary) goes to the log file only."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    if not any(
            isinstance(f, ShortConsole) for h in logger.handlers
            for f in h.filters):
        yield
        return
    saved = sys.stdout
    sys.stdout = writer = _LogWriter(logger, saved)
    try:
        yield
    finally:
        sys.stdout = saved
        writer.close()
