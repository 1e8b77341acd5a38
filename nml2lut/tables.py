"""tables: curves -> tables on a uniform voltage grid, with their measured error.

Heavy work happens once, here: every curve is evaluated exactly on the grid,
removable singularities are repaired from their limit, and the grid step is
refined until linear interpolation stays within the tolerance everywhere in
between (measured against the exact curve, not estimated).  Outside the grid
the lookup clamps to the edge values (see `nml2lut.lookup`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import TableError
from .grids import Grid, aligned_grid
from .lookup import interpolate

__all__ = [
    "CurveError",
    "Tables",
    "build_tables",
    "repair_singularities",
    "GridWarning",
    "SingularityWarning",
    "DEFAULT_RANGE",
    "DEFAULT_TOLERANCE",
    "DEFAULT_MAX_POINTS",
]

DEFAULT_RANGE = (-0.1, 0.06)
"""Default voltage range of a table (V): -100 to +60 mV, the range NeuroML tools analyse channels on."""
DEFAULT_TOLERANCE = 1e-4
"""Default bound on the interpolation error (absolute for inf, relative for tau)."""
DEFAULT_MAX_POINTS = 200_001
"""Largest grid a table may use before giving up on the tolerance (with a warning)."""
_START_STEP = 5e-4  # V; refinement starts from 0.5 mV
_SUBSAMPLES = (0.25, 0.5, 0.75)  # where between grid points the error is measured
_SINGULAR_OFFSET = 1e-7  # V; a removable singularity is replaced by the mean of its neighbours this far away
_ONE_SIDED = 1e-10  # V; offset giving the left and right limits of a curve at a breakpoint

Curve = Callable[[np.ndarray], np.ndarray]


class GridWarning(UserWarning):
    """The tolerance could not be met (for example a curve with a jump); the measured error is reported."""


class SingularityWarning(UserWarning):
    """A curve was not finite at a grid point and was repaired from its limit there."""


@dataclass(frozen=True)
class CurveError:
    """The measured interpolation error of one curve.

    ``metric`` is ``"absolute"`` (|table - exact| / max(1, |exact|), for
    steady states) or ``"relative"`` (|table - exact| / |exact|, for time
    constants); ``at`` is the voltage (V) where the maximum occurs.
    """

    max_error: float
    at: float
    metric: str


@dataclass(frozen=True)
class Tables:
    """Curves tabulated on one grid, interleaved: ``values[i, j]`` is curve ``j`` at point ``i``.

    Attributes
    ----------
    grid : Grid
    names : tuple of str
        The curves, in column order.
    values : ndarray, shape (grid.n, len(names))
        At a breakpoint node, the value just to its right.
    slopes : ndarray, shape (grid.n, len(names))
        Change of each curve across each interval (0 after the last node);
        at a breakpoint the interval before it ends at the left limit.
    errors : dict of str to CurveError
        Measured maximum interpolation error of each curve.
    tolerance : float
        The bound the grid was refined for.
    breakpoints : tuple of float
        Voltages where a curve switches branch and which are grid nodes.
    """

    grid: Grid
    names: tuple[str, ...]
    values: np.ndarray
    slopes: np.ndarray
    errors: dict[str, CurveError] = field(default_factory=dict)
    tolerance: float = DEFAULT_TOLERANCE
    breakpoints: tuple[float, ...] = ()

    def column(self, name: str) -> int:
        return self.names.index(name)

    @property
    def max_error(self) -> float:
        """The worst measured error over all curves (0 for no curves)."""
        return max((e.max_error for e in self.errors.values()), default=0.0)

    def interpolate(self, v: np.ndarray, name: str) -> np.ndarray:
        """Curve ``name`` at ``v`` exactly as the Brian2 lookup computes it."""
        return interpolate(self.values, self.grid.v_min, self.grid.v_max, v, self.column(name), self.slopes)


def repair_singularities(curve: Curve, v: np.ndarray, y: np.ndarray, name: str) -> np.ndarray:
    """Replace values of ``curve`` spoilt by a removable singularity with its limit there.

    A point is spoilt when the value is not finite, or when it departs from
    the mean of its two neighbours `_SINGULAR_OFFSET` away by far more than
    those neighbours differ from each other: the signature of cancellation in
    forms such as ``x/(exp(x) - 1)`` a hair away from ``x = 0``.  A jump in a
    curve (neighbours far apart) is left alone.

    Raises
    ------
    TableError
        The curve is not finite beside the point either (a true singularity).
    """
    with np.errstate(all="ignore"):
        below = np.asarray(curve(v - _SINGULAR_OFFSET), dtype=float) * np.ones_like(v)
        above = np.asarray(curve(v + _SINGULAR_OFFSET), dtype=float) * np.ones_like(v)
        mean = 0.5 * (below + above)
        departure = np.abs(y - mean)
        spoilt = (departure > 1e-7 * np.abs(mean)) & (departure > 10 * np.abs(above - below))
    bad = ~np.isfinite(y) | spoilt
    if not bad.any():
        return y
    at = v[bad]
    # A removable singularity has neighbours that agree; a pole or a jump does not.
    with np.errstate(all="ignore"):
        agree = np.abs(above - below) <= 1e-3 * np.abs(mean)
    unrepairable = ~(np.isfinite(mean[bad]) & agree[bad])
    if unrepairable.any():
        first = at[unrepairable][0]
        raise TableError(f"{name} is not finite at v = {first * 1e3:.6g} mV (value {curve(np.array([first]))[0]})")
    warnings.warn(
        f"{name}: removable singularity at v = {', '.join(f'{x * 1e3:.6g}' for x in at[:5])} mV "
        "repaired from its limit",
        SingularityWarning,
        stacklevel=3,
    )
    y = y.copy()
    y[bad] = mean[bad]
    return y


def _metric(name: str) -> str:
    return "relative" if name.rsplit("/", 1)[-1] in ("tau", "k") else "absolute"


def _errors(exact: np.ndarray, approx: np.ndarray, metric: str) -> np.ndarray:
    scale = np.abs(exact) if metric == "relative" else np.maximum(1.0, np.abs(exact))
    return np.abs(approx - exact) / scale


def _evaluate(curves: Mapping[str, Curve], v: np.ndarray) -> np.ndarray:
    columns = []
    for name, curve in curves.items():
        with np.errstate(all="ignore"):
            y = np.asarray(curve(v), dtype=float) * np.ones_like(v)
        columns.append(repair_singularities(curve, v, y, name))
    return np.column_stack(columns) if columns else np.empty((v.size, 0))


def _check_values(names: tuple[str, ...], v: np.ndarray, values: np.ndarray) -> None:
    for j, name in enumerate(names):
        quantity = name.rsplit("/", 1)[-1]
        if quantity in ("tau", "k"):
            bad, what = values[:, j] <= 0, "positive"
        elif quantity in ("rf", "rr"):  # transition rates of kinetic schemes
            bad, what = values[:, j] < 0, "non-negative"
        else:
            continue
        if bad.any():
            at = v[np.argmax(bad)]
            raise TableError(f"{name} must be {what}, but is {values[np.argmax(bad), j]:.6g} at v = {at * 1e3:.6g} mV")


def _one_sided(curves, names, grid, breakpoints, values):
    """Values just right of each breakpoint node, and slopes ending at the left limits."""
    right, left = values.copy(), values.copy()
    nodes = [k for k in (grid.index_of(b) for b in breakpoints) if k is not None]
    if nodes:
        at = grid.points()[nodes]
        left[nodes] = _evaluate(curves, at - _ONE_SIDED)
        right[nodes] = _evaluate(curves, at + _ONE_SIDED)
    slopes = np.zeros_like(values)
    slopes[:-1] = left[1:] - right[:-1]
    return right, slopes, tuple(float(grid.points()[k]) for k in nodes)


def _measure(curves, names, grid, values, slopes) -> dict[str, CurveError]:
    between = grid.between(_SUBSAMPLES)
    exact = _evaluate(curves, between)
    errors = {}
    for j, name in enumerate(names):
        metric = _metric(name)
        approx = interpolate(values, grid.v_min, grid.v_max, between, j, slopes)
        err = _errors(exact[:, j], approx, metric)
        worst = int(np.argmax(err))
        errors[name] = CurveError(float(err[worst]), float(between[worst]), metric)
    return errors


def _tabulate(curves, names, grid, breakpoints):
    v = grid.points()
    values = np.ascontiguousarray(_evaluate(curves, v))
    _check_values(names, v, values)
    values, slopes, nodes = _one_sided(curves, names, grid, breakpoints, values)
    return values, slopes, nodes, _measure(curves, names, grid, values, slopes)


def build_tables(
    curves: Mapping[str, Curve],
    *,
    v_range: tuple[float, float] = DEFAULT_RANGE,
    tolerance: float = DEFAULT_TOLERANCE,
    max_points: int = DEFAULT_MAX_POINTS,
    n_points: int | None = None,
    breakpoints: Sequence[float] = (),
    label: str = "",
    grid: Grid | None = None,
) -> Tables:
    """Tabulate ``curves`` on a uniform grid fine enough for ``tolerance``.

    Parameters
    ----------
    curves : mapping of str to callable
        Each takes voltages (V, float array) and returns the curve there.
        Names ending in ``tau`` are time constants: they must be positive,
        and their error is measured relative to their value.
    v_range : (float, float)
        The range the grid must cover (V); it may grow by less than a step
        to put breakpoints on nodes.
    tolerance : float
        Bound on the measured maximum interpolation error between grid points.
    max_points : int
        The grid never grows beyond this; if the tolerance is still not met
        (a jump off the grid, say) a `GridWarning` reports the measured error.
    n_points : int, optional
        Use exactly this many points (over exactly ``v_range``) instead of refining.
    breakpoints : sequence of float
        Voltages where a curve may jump or bend (`nml2lut.grids.find_breakpoints`);
        the grid puts nodes there when it can and stores one-sided values.
    label : str
        Prefix for messages (the channel).
    grid : Grid, optional
        Use exactly this grid (no refinement; ``v_range`` and ``n_points``
        are ignored): how channels are put on one shared grid.  The errors
        are measured as always and a `GridWarning` reports a missed tolerance.

    Returns
    -------
    Tables

    Raises
    ------
    TableError
        A curve is NaN or infinite where no limit repairs it, or a time
        constant is not positive.
    """
    if not (tolerance > 0 and math.isfinite(tolerance)):
        raise TableError(f"tolerance must be a positive number, got {tolerance!r}")
    names = tuple(curves)
    labelled = {f"{label}{name}": curve for name, curve in curves.items()}
    v_range = (float(v_range[0]), float(v_range[1]))
    Grid(*v_range, 2)  # validates the range
    fixed = grid is not None or n_points is not None
    if grid is not None:
        pass
    elif n_points is not None:
        grid = Grid(*v_range, int(n_points))
    else:
        grid = aligned_grid(v_range, _START_STEP, breakpoints, max_points)
    values, slopes, nodes, errors = _tabulate(labelled, tuple(labelled), grid, breakpoints)
    previous: dict[str, float] = {}
    stuck: set[str] = set()
    while not fixed and names:
        # Linear interpolation error shrinks with the square of the step; a
        # curve whose error does not shrink has a jump off the grid nodes.
        stuck |= {k for k, e in errors.items() if e.max_error > previous.get(k, math.inf) / 1.5}
        worst = max((e.max_error for k, e in errors.items() if k not in stuck), default=0.0)
        if worst <= tolerance or grid.n >= max_points:
            break
        previous = {k: e.max_error for k, e in errors.items()}
        factor = min(8.0, max(1.5, 1.1 * math.sqrt(worst / tolerance)))
        grid = aligned_grid(v_range, grid.step / factor, breakpoints, max_points)
        values, slopes, nodes, errors = _tabulate(labelled, tuple(labelled), grid, breakpoints)
    errors = {name: errors[f"{label}{name}"] for name in names}
    worst_name = max(errors, key=lambda k: errors[k].max_error, default=None)
    if worst_name is not None and errors[worst_name].max_error > tolerance:
        e = errors[worst_name]
        warnings.warn(
            f"{label}{worst_name}: interpolation error {e.max_error:.3g} ({e.metric}) at v = {e.at * 1e3:.6g} mV "
            f"exceeds the tolerance {tolerance:g} with {grid.n} points (a jump off the grid nodes?)",
            GridWarning,
            stacklevel=2,
        )
    return Tables(grid, names, values, slopes, errors, tolerance, nodes)
