# Copyright (c) mmvan contributors. All rights reserved.
"""A short console for training and testing runs; the log file keeps all.

mmengine's Runner logs its environment, its whole config, the hook table,
one line per parameter group option and one line per ``interval``
iterations, to the console and to the log file alike. The log file keeps
all of it. The console (mmengine's ``StreamHandler`` of the Runner's
``MMLogger``) gets :class:`ShortConsole`, a filter with a shorter formatter
(:func:`short_console`), and shows:

- one line per epoch (or per tenth of an iteration-based run), and every
  metrics line, built from the values :class:`ShortLogProcessor` collects
  (the Runner's ``log_processor``), never from mmengine's text; on a
  terminal the iterations in between are a progress line that is
  overwritten in place;
- every other record, except the set-up report of mmengine's Runner (its
  environment, config and hook table, the optimizer's per-parameter
  options, where checkpoints go and each save) and the detail the metrics
  of mmpretrain, mmdet, mmseg and mmpose log beside their figures, and
  mmengine's warnings about its own deprecated file API. Those are told
  apart by the code that logs them (module and function,
  :data:`FILE_ONLY`), not by their text.

The per-parameter initialisation report of mmengine's ``BaseModule`` goes to
the log file; without one (a model built in a script, a benchmark, a test)
:class:`InitReportFilter` logs it at DEBUG level, so it shows only when asked
for (:func:`quiet_init_report`).
"""
import contextlib
import datetime
import logging
import os
import shutil
import sys

from mmengine.logging import MMLogger
from mmengine.logging.logger import MMFormatter
from mmengine.runner import LogProcessor

VERBOSE_ENV = 'MMVAN_VERBOSE'

#: The code (module, function) whose INFO records only the log file shows.
FILE_ONLY = frozenset([
    # The environment and the whole config; the hook table; SyncBatchNorm
    # left as it is without distributed training.
    ('mmengine.runner.runner', '_log_env'),
    ('mmengine.runner.runner', '__init__'),
    ('mmengine.runner.runner', 'wrap_model'),
    # One line per parameter group option.
    ('mmengine.optim.optimizer.default_constructor', 'add_params'),
    # The experiment name beside the loop lines.
    ('mmengine.hooks.logger_hook', 'after_train_iter'),
    # Where checkpoints go, each save, each best checkpoint (the
    # checkpoint hook logs a short line of its own).
    ('mmengine.hooks.checkpoint_hook', 'before_train'),
    ('mmengine.hooks.checkpoint_hook', 'after_train_epoch'),
    ('mmengine.hooks.checkpoint_hook', 'after_train_iter'),
    ('mmengine.hooks.checkpoint_hook', '_save_best_checkpoint'),
    ('mmengine.runner.checkpoint', 'load_checkpoint'),
])
#: The packages whose INFO records only the log file shows: the metrics'
#: tables and summaries (the metrics line has their figures).
FILE_ONLY_PACKAGES = ('mmpretrain.evaluation', 'mmdet.evaluation',
                      'mmseg.evaluation', 'mmpose.evaluation')
# Warnings mmengine gives on every run about its own internals (the
# deprecated ``FileClient`` that its checkpoint saving still creates, a
# metric without a prefix), by the module and function that give them.
_FILE_ONLY_WARNINGS = frozenset([
    ('mmengine.fileio.file_client', '__new__'),
    ('mmengine.fileio.file_client', '__init__'),
    ('mmengine.evaluator.metric', '__init__'),
])
# Where a record is logged from is the first frame outside these modules.
_LOGGING_MODULES = ('logging', 'mmengine.logging.logger', __name__)


def console_is_verbose(log_level='INFO'):
    """Whether the console keeps mmengine's full output: ``MMVAN_VERBOSE=1``
    (``--verbose`` of the tools) or a ``log_level`` of DEBUG or lower."""
    if os.environ.get(VERBOSE_ENV, '').lower() in ('1', 'true', 'yes', 'on'):
        return True
    level = log_level
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
    return isinstance(level, int) and level <= logging.DEBUG


# --- The values of a loop line -----------------------------------------------


class LogLine(str):
    """A line of mmengine's log, as its ``LogProcessor`` wrote it (the log
    file shows this text), with the values the console shows.

    Attributes:
        mode (str): ``'train'``, ``'val'`` or ``'test'``.
        epoch (int, optional): The epoch of a training or validation line
            of an epoch-based run.
        step (tuple, optional): ``(i, n)``: iteration ``i`` of ``n`` (an
            iteration line), None for a metrics line.
        fields (list): ``(name, text)`` pairs in the console's order.
    """

    def __new__(cls, text, mode, epoch, step, fields):
        line = super().__new__(cls, text)
        line.mode = mode
        line.epoch = epoch
        line.step = step
        line.fields = fields
        return line


class ShortLogProcessor(LogProcessor):
    """mmengine's ``LogProcessor`` (same arguments and log text) whose lines
    carry the values that :class:`ShortConsole` shows (:class:`LogLine`).

    An iteration line: the losses, the learning rates (not ``base_lr``),
    the other values (``grad_norm``), then the time left and the time per
    iteration; a metrics line: the metrics without the timing.
    """

    def _text(self, value, lr=False):
        if isinstance(value, float):
            return f'{value:.{self.num_digits}{"e" if lr else "f"}}'
        return str(value)

    def get_log_after_iter(self, runner, batch_idx, mode):
        tag, text = super().get_log_after_iter(runner, batch_idx, mode)
        values = {
            self._remove_prefix(key, f'{mode}/'): value
            for key, value in tag.items()
            if key not in ('epoch', 'iter', 'memory')
        }
        # mmengine's condition for its eta and time fields.
        timing = ('time' in values and 'data_time' in values
                  and 'eta' in runner.message_hub.runtime_info)
        losses, lrs, others = [], [], []
        for name, value in values.items():
            if name in ('time', 'data_time', 'base_lr'):
                continue
            if name.endswith('lr'):
                lrs.append((name, self._text(value, lr=True)))
            elif name.startswith('loss') or name.startswith('val/loss'):
                losses.append((name, self._text(value)))
            elif mode == 'train':
                others.append((name, self._text(value)))
        fields = losses + lrs + others
        if timing:
            eta = int(runner.message_hub.get_info('eta'))
            fields += [('eta', str(datetime.timedelta(seconds=eta))),
                       ('time', self._text(values['time']))]
        epoch = None
        if mode == 'train' and self.by_epoch:
            epoch = self._get_epoch(runner, mode)
            step = (self._get_iter(runner, batch_idx),
                    self._get_dataloader_size(runner, mode))
        elif mode == 'train':
            step = (self._get_iter(runner, batch_idx), runner.max_iters)
        else:
            if self.by_epoch and mode == 'val':
                epoch = self._get_epoch(runner, mode)
            step = (batch_idx + 1, self._get_dataloader_size(runner, mode))
        return tag, LogLine(text, mode, epoch, step, fields)

    def get_log_after_epoch(self,
                            runner,
                            batch_idx,
                            mode,
                            with_non_scalar=False):
        tag, text = super().get_log_after_epoch(
            runner, batch_idx, mode, with_non_scalar=with_non_scalar)
        values = dict(tag)
        if not with_non_scalar:
            values.update(self._collect_non_scalars(runner, mode))
        fields = [
            (name, self._text(value)) for name, value in values.items()
            if isinstance(value, (int, float, str))
            and self._remove_prefix(name, f'{mode}/') not in
            ('time', 'data_time', 'memory') and not name.endswith('_copypaste')
        ]
        epoch = None
        if self.by_epoch and mode == 'val':
            epoch = self._get_epoch(runner, mode)
        return tag, LogLine(text, mode, epoch, None, fields)


# --- The console of a Runner -------------------------------------------------


def _origin(skip=_LOGGING_MODULES):
    """``(module, function)`` of the code that is logging now (called from
    a filter, which runs inside the logging call)."""
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get('__name__', '')
        if module not in skip:
            return module, frame.f_code.co_name
        frame = frame.f_back
    return '', ''


def _join(fields):
    return '  '.join(f'{name}: {value}' for name, value in fields)


class ShortConsole(logging.Filter):
    """The filter of a Runner's console handler (see the module).

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
        if getattr(record, 'mmvan_stdout', False):
            return None
        if record.levelno > logging.INFO:
            if record.levelno == logging.WARNING and \
                    _origin() in _FILE_ONLY_WARNINGS:
                return None
            return True
        line = record.msg
        if isinstance(line, LogLine):
            if line.mode == 'train':
                return self._train_line(record, line)
            return self._eval_line(line)
        origin = _origin()
        if origin in FILE_ONLY or origin[0].startswith(FILE_ONLY_PACKAGES):
            return None
        return True

    def _epoch(self, epoch):
        if self.max_epochs:
            return f'epoch {epoch}/{self.max_epochs}'
        return f'epoch {epoch}'

    def _train_line(self, record, line):
        i, n = line.step
        text = _join(line.fields)
        if line.epoch is not None:
            where = self._epoch(line.epoch)
            pending = self._pending
            if pending is not None and pending.msg.epoch != line.epoch:
                self.end_epoch()
            if i >= n:
                self._pending = None
                return f'{where}  {text}'
            record.mmvan_console = f'{where}  {text}'
            self._pending = record
            return self.show_progress(f'{where} [{i}/{n}]  {text}')
        # An iteration-based run: a line per tenth of it.
        self._train_iter = f'iter {i}/{n}'
        tenth = i * 10 // n
        if i >= n or tenth > self._tenth:
            self._tenth = tenth
            return f'{self._train_iter}  {text}'
        return self.show_progress(f'{self._train_iter}  {text}')

    def _eval_line(self, line):
        name = 'validation' if line.mode == 'val' else 'test'
        if line.epoch is not None:
            where = f'{self._epoch(line.epoch)}  {name}'
        elif line.mode == 'val' and self._train_iter:
            where = f'{self._train_iter}  {name}'
        else:
            where = name
        if line.step is not None:
            i, n = line.step
            return self.show_progress(f'{where} [{i}/{n}]  ' +
                                      _join(line.fields))
        return f'{where}  {_join(line.fields) or "no metrics"}'

    def show_progress(self, text):
        """Overwrite the progress line (on a terminal); never a record."""
        if self.live:
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


def short_console(logger, max_epochs=None):
    """Give ``logger``'s console handlers (not its file handlers) the
    :class:`ShortConsole` filter and a :class:`ShortFormatter`; the log
    file keeps every record as mmengine writes it. Returns the filters
    installed."""
    installed = []
    for handler in logger.handlers:
        if not isinstance(handler, logging.StreamHandler) or isinstance(
                handler, logging.FileHandler):
            continue
        if any(isinstance(f, ShortConsole) for f in handler.filters):
            continue
        console = ShortConsole(handler, max_epochs=max_epochs)
        handler.addFilter(console)
        handler.setFormatter(ShortFormatter())
        installed.append(console)
    return installed


# --- The initialisation report -----------------------------------------------


class InitReportFilter(logging.Filter):
    """A logger filter that turns the INFO records of mmengine's
    per-parameter initialisation report into DEBUG records.

    ``BaseModule.init_weights`` writes its report straight into the
    logger's log files; without one it logs an INFO record per parameter,
    which this filter lowers to DEBUG (shown only at ``log_level='DEBUG'``).
    """

    def filter(self, record):
        if record.levelno == logging.INFO and \
                _origin()[1] == '_dump_init_info':
            # The handlers compare their level with the record's.
            record.levelno, record.levelname = logging.DEBUG, 'DEBUG'
        return True


def quiet_init_report(logger=None):
    """Add :class:`InitReportFilter` to ``logger`` (by default the current
    ``MMLogger``, the one mmengine's report goes to); again, it changes
    nothing."""
    logger = logger or MMLogger.get_current_instance()
    if not any(isinstance(f, InitReportFilter) for f in logger.filters):
        logger.addFilter(InitReportFilter())
    return logger


# --- What third-party code prints --------------------------------------------


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
