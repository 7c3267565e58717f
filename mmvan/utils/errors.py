# Copyright (c) mmvan contributors. All rights reserved.
"""mmvan's errors: one base class, one subclass per kind.

The command-line tools catch :class:`MMVanError` and print its message as
one ``error:`` line (``MMVAN_DEBUG=1`` shows the traceback). Library code
raises the subclass that says what went wrong; callers never need to read
the message to tell the kinds apart.
"""


class MMVanError(Exception):
    """Base class of every error mmvan raises on purpose."""


class UserError(MMVanError):
    """A mistake in what the user asked for (a path, a config key, missing
    data). Tools print it as one message and exit with status 2."""


class ConfigError(UserError, ValueError):
    """A config asks for something that cannot be built (an unknown arch,
    attention or kernel size, out-of-range stages)."""


class CheckpointError(MMVanError, RuntimeError):
    """A checkpoint could not be loaded (missing, truncated, not a
    checkpoint, not safe to load, not fitting the model)."""


class ConversionError(MMVanError, ValueError):
    """A checkpoint cannot be converted (unknown format, unmapped or missing
    keys, shape mismatch, non-finite tensors)."""


class DataError(MMVanError):
    """Data that cannot be used: unreadable images past the allowed share,
    images too large to decode safely."""


class DivergenceError(MMVanError):
    """Training produced a non-finite loss or gradient norm."""
