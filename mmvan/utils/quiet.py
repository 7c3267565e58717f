# Copyright (c) mmvan contributors. All rights reserved.
"""Keep mmengine's per-parameter initialisation report out of the console.

``BaseModule.init_weights`` reports how every parameter was initialised.
In a training run the report goes to the log file, where it belongs; without
a log file (a model built in a script, a benchmark, a test) mmengine prints
one INFO line per parameter, hundreds of lines before any result. Here the
report still goes to every log file, and without one it is logged at DEBUG
level, so it shows only when asked for.
"""
import logging


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
