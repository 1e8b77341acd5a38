"""sharing: the voltage tables of several channels on one grid.

Each channel's tables get a grid refined for that channel alone, so a cell
of eight channels has up to eight grids, and every step of every neuron
computes eight grid positions (a subtraction, a multiplication, two clamps
and a conversion to an integer each).  On one common grid the position is
the same expression with the same numbers in every lookup; the C++ and
Cython compilers then compute it once (the lookups are inline functions),
and the numpy lookups share it too (`nml2lut.lookup` keeps the last
position per grid).

The common grid is as fine as the finest of the channels' grids and covers
all of them, so no channel's tables get coarser; its nodes sit on the
switch points (breakpoints) of the channels when those have a common
spacing.  Each channel's tables are rebuilt from its exact curves on that
grid, and the errors are measured again: a channel whose error would grow
beyond its tolerance there (a switch point between nodes, say) keeps its
own grid.

The channels that end up on one grid then also read their tables from one
array in C++ (`nml2lut.rows.share_rows`): one row address per neuron and
step instead of one per channel.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import replace

from .channel import LoadedChannel, _load, _v_range
from .errors import Nml2LutError
from .grids import Grid, aligned_grid
from .lookup import LookupFunction
from .rows import share_rows
from .tables import DEFAULT_MAX_POINTS, GridWarning, SingularityWarning

__all__ = ["share_grid", "common_grid"]


def common_grid(grids: Sequence[Grid], breakpoints: Sequence[float] = (), max_points: int = DEFAULT_MAX_POINTS) -> Grid:
    """A uniform grid covering every grid of `grids`, with a step no larger than the smallest of theirs.

    Parameters
    ----------
    grids : sequence of Grid
    breakpoints : sequence of float
        Voltages that should be nodes (when they have a common spacing, see
        `nml2lut.grids.aligned_grid`).
    max_points : int
        The grid never has more points (it is then coarser than asked).
    """
    low = min(g.v_min for g in grids)
    high = max(g.v_max for g in grids)
    step = min(g.step for g in grids)
    return aligned_grid((low, high), step, sorted(set(breakpoints)), max_points)


def _range_of(channel: LoadedChannel) -> tuple[float, float] | None:
    if channel.tables is None or channel._source is None or not channel.tables.names:
        return None
    return _v_range(channel._arguments.get("v_range"))


def _on_grid(channel: LoadedChannel, grid: Grid) -> LoadedChannel | None:
    """`channel` with its voltage tables rebuilt on `grid`, or None if an error would exceed its bound."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridWarning)  # measured below; the channel then keeps its grid
        warnings.simplefilter("ignore", SingularityWarning)  # reported when the channel was loaded
        try:
            rebuilt = _load(channel._source, **channel._arguments, grid=grid, tables2d=channel.tables2d)
        except Nml2LutError:  # e.g. a curve that is not finite on the wider range: keep the own grid
            return None
    bound = channel.tables.tolerance
    for name, error in rebuilt.tables.errors.items():
        before = channel.tables.errors[name].max_error
        if not error.max_error <= max(bound, before) or math.isnan(error.max_error):
            return None
    return rebuilt


def share_grid(channels: Sequence[LoadedChannel]) -> list[LoadedChannel]:
    """The channels with their voltage tables on one common grid, so that a step finds its grid position once.

    Use it for the channels of one cell (`nml2lut.load_cell` does).  Channels
    loaded with different ``v_range`` are grouped by range, one grid per
    group; channels in exact mode without tables, and 2-D (concentration)
    tables, are left as they are.  A channel whose tables would miss their
    tolerance on the common grid keeps its own.

    Parameters
    ----------
    channels : sequence of LoadedChannel
        As `nml2lut.load_channel` returns them.

    Returns
    -------
    list of LoadedChannel
        In the same order; new objects where the tables were rebuilt (their
        function names change with the tables) or now read one array with the
        others on their grid (same names), the same objects elsewhere.  Each
        carries its tables' grid and errors measured on it.

    Examples
    --------
    >>> import nml2lut
    >>> na = nml2lut.load_channel("example_channels/wb_na.channel.nml", name="Na")
    >>> k = nml2lut.load_channel("example_channels/wb_k.channel.nml", name="K")
    >>> na, k = nml2lut.share_grid([na, k])
    >>> na.grid == k.grid
    True
    """
    out = list(channels)
    by_range: dict[tuple[float, float], list[int]] = {}
    for k, channel in enumerate(out):
        key = _range_of(channel)
        if key is not None:
            by_range.setdefault(key, []).append(k)
    for members in by_range.values():
        grids = [out[k].grid for k in members]
        if len(set(grids)) < 2:
            continue
        breakpoints = [b for k in members for b in out[k].tables.breakpoints]
        grid = common_grid(grids, breakpoints)
        for k in members:
            if out[k].grid != grid:
                out[k] = _on_grid(out[k], grid) or out[k]
    return _one_array_per_grid(out)


def _one_array_per_grid(channels: list[LoadedChannel]) -> list[LoadedChannel]:
    """The channels, those on a grid shared with others as copies whose lookup functions read one array."""
    by_grid: dict[Grid, dict[str, LookupFunction]] = {}
    for channel in channels:
        if channel.grid is None:
            continue
        for name, value in channel.code.namespace.items():
            if isinstance(value, LookupFunction):
                by_grid.setdefault(channel.grid, {}).setdefault(name, value)  # a channel twice: its function once
    replacements: dict[str, LookupFunction] = {}
    for functions in by_grid.values():
        if len(functions) > 1:
            replacements.update(zip(functions, share_rows(list(functions.values())), strict=True))
    out = []
    for channel in channels:
        namespace = channel.code.namespace
        if not any(name in replacements for name in namespace):
            out.append(channel)
            continue
        namespace = {name: replacements.get(name, value) for name, value in namespace.items()}
        out.append(replace(channel, code=replace(channel.code, namespace=namespace)))
    return out
