"""grids: uniform voltage grids, and where curves switch branch (breakpoints).

A curve defined by cases (``V .lt. -10``) may jump or bend where a condition
flips.  Linear interpolation across such a point is wrong over a whole grid
interval, however fine the grid.  So the switch points are found first and the
grid is laid so that they fall on grid nodes; the table then stores one-sided
values there (see `nml2lut.tables`) and the lookup is exact up to the
interpolation error of the smooth pieces.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import TableError

__all__ = ["Grid", "find_breakpoints", "aligned_grid", "MAX_BREAKPOINTS"]

MAX_BREAKPOINTS = 64
"""More switch points than this are not aligned to the grid (the curve is treated as smooth)."""
_SCAN_STEP = 1e-5  # V; conditions are scanned at 0.01 mV, then bisected
_QUANTUM = 1e-12  # V; breakpoints are placed to the picovolt


@dataclass(frozen=True)
class Grid:
    """A uniform grid: ``n`` points from ``v_min`` to ``v_max`` inclusive (volts)."""

    v_min: float
    v_max: float
    n: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.v_min) and math.isfinite(self.v_max) and self.v_max > self.v_min):
            raise TableError(f"grid range ({self.v_min}, {self.v_max}) must be finite and increasing")
        if self.n < 2:
            raise TableError(f"a grid needs at least 2 points, got {self.n}")

    @property
    def step(self) -> float:
        return (self.v_max - self.v_min) / (self.n - 1)

    def points(self) -> np.ndarray:
        return np.linspace(self.v_min, self.v_max, self.n)

    def between(self, fractions: Sequence[float]) -> np.ndarray:
        """Points at the given fractions of every interval."""
        left = self.points()[:-1]
        return np.concatenate([left + f * self.step for f in fractions])

    def index_of(self, v: float) -> int | None:
        """The node at ``v`` (within a millionth of a step), if there is one."""
        position = (v - self.v_min) / self.step
        k = round(position)
        return k if abs(position - k) < 1e-6 and 0 <= k < self.n else None


def find_breakpoints(switches: Sequence[Callable[[np.ndarray], np.ndarray]], v_range: tuple[float, float]) -> list[float]:
    """Voltages in ``v_range`` where any of ``switches`` (functions of v, truthy/falsy) flips.

    Each flip seen on a 0.01 mV scan is bisected to machine precision; flips
    closer together than the scan step may be missed (they then show up as
    interpolation error, which is measured).
    """
    low, high = v_range
    v = np.linspace(low, high, max(2, math.ceil((high - low) / _SCAN_STEP) + 1))
    found: set[float] = set()
    for switch in switches:
        with np.errstate(all="ignore"):
            state = np.asarray(switch(v), dtype=float) * np.ones_like(v) > 0.5
        flips = np.flatnonzero(state[1:] != state[:-1])
        if flips.size > MAX_BREAKPOINTS:
            continue
        left, right = v[flips], v[flips + 1]
        left_state = state[flips]
        for _ in range(60):  # halves 1e-5 V below the spacing of doubles
            middle = 0.5 * (left + right)
            with np.errstate(all="ignore"):
                middle_state = np.asarray(switch(middle), dtype=float) * np.ones_like(middle) > 0.5
            same = middle_state == left_state
            left, right = np.where(same, middle, left), np.where(same, right, middle)
        found.update(round(float(x) / _QUANTUM) * _QUANTUM for x in right)
    return sorted(found) if len(found) <= MAX_BREAKPOINTS else []


def aligned_grid(v_range: tuple[float, float], step: float, breakpoints: Sequence[float], max_points: int) -> Grid:
    """A grid covering ``v_range`` with a step of at most ``step`` and, if it can, a node at every breakpoint.

    The range may grow by less than a step at either end to put the nodes
    where they belong.  When the breakpoints have no common spacing down to
    an eighth of ``step`` (or the grid would exceed ``max_points``), the
    plain grid is returned and the jumps stay inside intervals.
    """
    low, high = v_range
    plain = Grid(low, high, min(max_points, max(2, math.ceil((high - low) / step - 1e-9) + 1)))
    inside = [b for b in breakpoints if low < b < high]
    if not inside:
        return plain
    ticks = [round(b / _QUANTUM) for b in inside]
    spacing = 0
    for tick in ticks[1:]:
        spacing = math.gcd(spacing, tick - ticks[0])
    if spacing == 0:  # one breakpoint: any step works
        aligned_step = step
    else:
        aligned_step = spacing * _QUANTUM / math.ceil(spacing * _QUANTUM / step - 1e-9)
    if aligned_step < step / 8:
        return plain
    anchor = ticks[0] * _QUANTUM
    start = anchor - math.ceil((anchor - low) / aligned_step - 1e-9) * aligned_step
    n = math.ceil((high - start) / aligned_step - 1e-9) + 1
    if n > max_points:
        return plain
    return Grid(start, start + (n - 1) * aligned_step, n)
