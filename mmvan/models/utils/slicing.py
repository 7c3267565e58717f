# Copyright (c) mmvan contributors. All rights reserved.
"""Folded inference on CPU within a memory budget.

The folded VAN has no batch statistics, so every image, and every row of an
image away from its neighbours' reach, is computed independently. Running a
stage over parts of its input keeps the widest activation, the MLP's hidden
map (``mlp_ratio`` times wider than the stage), within a budget: small
buffers are reused by the memory allocator instead of being mapped,
page-faulted and returned to the system at every convolution. The results
are the same sums.

Vocabulary:

- *budget*: the bytes one MLP hidden map may take at once; 0 means no limit.
  The public argument is ``chunk_mib``
  (:meth:`mmvan.models.VAN.switch_to_deploy`, :func:`mmvan.apis.fuse_model`).
- *slice*: consecutive images of the batch, taken through a stage's blocks
  together.
- *band*: consecutive rows of one image, taken through one block's MLP
  together, with ``halo`` extra rows above and below for the 3x3 depth-wise
  convolution.
"""
import torch

from mmvan.utils.errors import ConfigError

# Fewest rows per band: each band computes two rows more than it keeps.
MIN_BAND_ROWS = 8


def may_slice(x):
    """Whether ``x`` may be split into slices or bands: only for plain
    inference on CPU, where nothing records the shapes (tracing, export,
    autograd) and no allocator caches blocks (GPUs, where slicing would only
    cut parallelism)."""
    return x.dim() == 4 and x.device.type == 'cpu' and not (
        torch.is_grad_enabled() or torch.jit.is_tracing()
        or torch.jit.is_scripting() or torch.compiler.is_compiling())


class MemoryBudget:
    """How much of a batch, or of an image, one pass may take.

    Args:
        mib (float): The budget of one MLP hidden map in MiB; 0 means no
            limit.
    """

    def __init__(self, mib=0):
        if mib < 0:
            raise ConfigError(f'chunk_mib must be >= 0, got {mib}.')
        self.nbytes = int(mib * 2**20)

    def _units(self, unit, total, least, hidden_channels):
        """How many of ``total`` parts like ``unit`` fit in the budget; at
        least ``least``, and ``total`` when nothing may be split."""
        if not self.nbytes or not may_slice(unit):
            return total
        hidden = (
            hidden_channels * (unit.numel() // unit.shape[1]) *
            unit.element_size())
        return max(least, self.nbytes // max(hidden, 1))

    def images_per_slice(self, x, hidden_channels):
        """Images of the batch ``x`` per slice (all of them: no slicing).

        Args:
            x (Tensor): The stage's input, ``(N, C, H, W)``.
            hidden_channels (int): Channels of the stage's MLP hidden map.
        """
        return self._units(x[:1], x.shape[0], 1, hidden_channels)

    def rows_per_band(self, x, hidden_channels):
        """Rows of ``x`` per band (all of them: no bands); at least
        :data:`MIN_BAND_ROWS`."""
        return self._units(x[:, :, :1], x.shape[2], MIN_BAND_ROWS,
                           hidden_channels)


def run_in_slices(fn, x, images):
    """``fn(x)``, computed over slices of ``images`` images of the batch and
    concatenated."""
    if images >= x.shape[0]:
        return fn(x)
    return torch.cat([fn(part) for part in x.split(images)])


def run_in_bands(fn, x, rows, halo=1):
    """A row-local function of ``x``, computed over bands of ``rows`` rows.

    Args:
        fn (callable): ``fn(band, own)`` gets a band of ``x`` with up to
            ``halo`` extra rows above and below and the slice of its own
            rows within it, and returns the output of those own rows.
        x (Tensor): ``(N, C, H, W)``.
        rows (int): Rows per band; ``H`` or more computes ``x`` whole.
        halo (int): Rows of context each output row needs on each side.

    Returns:
        Tensor: The bands' outputs concatenated along the rows.
    """
    height = x.shape[2]
    if rows >= height:
        return fn(x, slice(None))
    bands = []
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        lo, hi = max(top - halo, 0), min(bottom + halo, height)
        bands.append(fn(x[:, :, lo:hi], slice(top - lo, bottom - lo)))
    return torch.cat(bands, dim=2)
