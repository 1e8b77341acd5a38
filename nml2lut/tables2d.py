"""tables2d: curves of voltage and concentration -> 2-D tables with their measured error.

For concentration-dependent gates.  The voltage axis is uniform, the
concentration axis uniform in ``log(c)`` (concentrations span decades, and
Hill-type curves are smooth in ``log(c)``); each axis is refined on its own
until bilinear interpolation, measured against the exact curve halfway
between grid lines in either direction and in both, meets the tolerance.
Outside the grid the lookup clamps to the edge values on both axes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .errors import TableError
from .lookup import LookupTable2D, interpolate2d
from .tables import DEFAULT_RANGE, DEFAULT_TOLERANCE, CurveError, GridWarning

__all__ = ["Tables2D", "build_tables_2d", "DEFAULT_CONC_RANGE", "MAX_VALUES"]

DEFAULT_CONC_RANGE = (1e-6, 10.0)
"""Default concentration range of a 2-D table (mol/m^3 = mM)."""
MAX_VALUES = 8_000_000
"""Largest number of stored values (points x columns) before giving up on the tolerance."""
_START_V_STEP = 1e-3  # V
_START_PER_DECADE = 8

Curve2D = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Tables2D:
    """Curves of (v, c) on one grid: ``table.values[i, j, k]`` is curve ``k`` at (v_i, c_j).

    ``errors`` holds the measured maximum error per curve, ``at`` being the
    voltage where it occurs (the concentration is in ``at_conc``).
    """

    table: LookupTable2D
    names: tuple[str, ...]
    errors: dict[str, CurveError] = field(default_factory=dict)
    at_conc: dict[str, float] = field(default_factory=dict)
    tolerance: float = DEFAULT_TOLERANCE

    def column(self, name: str) -> int:
        return self.names.index(name)

    @property
    def max_error(self) -> float:
        return max((e.max_error for e in self.errors.values()), default=0.0)

    def interpolate(self, v: np.ndarray, conc: np.ndarray, name: str) -> np.ndarray:
        """Curve ``name`` at (v, conc) exactly as the Brian2 lookup computes it."""
        return interpolate2d(self.table, v, conc, self.column(name))


def _axes(v_range, c_range, n_v: int, n_c: int) -> tuple[np.ndarray, np.ndarray]:
    return np.linspace(*v_range, n_v), np.geomspace(*c_range, n_c)


def _evaluate(curves: Mapping[str, Curve2D], v: np.ndarray, c: np.ndarray) -> np.ndarray:
    vv, cc = np.meshgrid(v, c, indexing="ij")
    out = np.empty((v.size, c.size, len(curves)))
    for k, (name, curve) in enumerate(curves.items()):
        with np.errstate(all="ignore"):
            y = np.asarray(curve(vv, cc), dtype=float) * np.ones_like(vv)
        bad = ~np.isfinite(y)
        if bad.any():
            i, j = (int(x) for x in np.argwhere(bad)[0])
            raise TableError(f"{name} is not finite at v = {v[i] * 1e3:.6g} mV, conc = {c[j]:.3g} mM")
        quantity = name.rsplit("/", 1)[-1]
        if quantity in ("tau", "k") and np.any(y <= 0):
            i, j = (int(x) for x in np.argwhere(y <= 0)[0])
            raise TableError(f"{name} must be positive, but is {y[i, j]:.6g} at v = {v[i] * 1e3:.6g} mV, "
                             f"conc = {c[j]:.3g} mM")  # fmt: skip
        out[:, :, k] = y
    return out


def _measure(curves, table: LookupTable2D) -> tuple[dict[str, tuple[float, float, float, str]], dict[str, float]]:
    """Worst error per curve (error, v, c, metric), and the worst over curves per probe set.

    The probe sets are ``"v"`` (halfway between voltage grid lines, on the
    concentration grid), ``"c"`` (the other way round) and ``"vc"`` (halfway
    in both directions, where the two axes' errors add up).
    """
    v, c = table.x, table.y
    v_mid = 0.5 * (v[:-1] + v[1:])
    c_mid = np.sqrt(c[:-1] * c[1:])
    probes = {"v": (v_mid, c), "c": (v, c_mid), "vc": (v_mid, c_mid)}
    worst: dict[str, tuple[float, float, float, str]] = {}
    along = {"v": 0.0, "c": 0.0, "vc": 0.0}
    for axis, (pv, pc) in probes.items():
        exact = _evaluate(curves, pv, pc)
        vv, cc = np.meshgrid(pv, pc, indexing="ij")
        for k, name in enumerate(curves):
            metric = "relative" if name.rsplit("/", 1)[-1] in ("tau", "k") else "absolute"
            ref = exact[:, :, k]
            scale = np.abs(ref) if metric == "relative" else np.maximum(1.0, np.abs(ref))
            err = np.abs(interpolate2d(table, vv, cc, k) - ref) / scale
            flat = int(np.argmax(err))
            i, j = np.unravel_index(flat, err.shape)
            along[axis] = max(along[axis], float(err[i, j]))
            if float(err[i, j]) >= worst.get(name, (-1.0,))[0]:
                worst[name] = (float(err[i, j]), float(pv[i]), float(pc[j]), metric)
    return worst, along


def _refinement(along: dict[str, float], previous: dict[str, float], tolerance: float) -> dict[str, float] | None:
    """How much finer each axis must get (factor 1: left alone), or None when no refinement can help.

    Halfway in both directions the bilinear error is about the sum of the
    errors along each axis, and each shrinks with the square of its axis's
    step.  The smallest grid whose sum meets the tolerance gives each axis
    half of it; an axis already below its half is left alone (a curve of the
    concentration alone keeps its starting voltage axis) and the other gets
    the rest.  An axis whose error did not shrink with its last refinement
    has a jump and is not refined again.
    """
    if max(along.values()) <= tolerance:
        return None
    target = tolerance / 1.2  # margin: the errors are measured at sample points
    errors = {axis: along[axis] for axis in ("v", "c")}
    total = errors["v"] + errors["c"]
    if along["vc"] > total > 0:  # the mixed error is what the grid must meet: scale both shares up to it
        errors = {axis: error * along["vc"] / total for axis, error in errors.items()}
    stuck = {axis: not along[axis] < previous[axis] / 1.5 for axis in errors}  # measured against measured
    factors = {axis: math.sqrt(2.0 * error / target) for axis, error in errors.items()}
    for axis, other in (("v", "c"), ("c", "v")):
        if factors[axis] <= 1.0 or stuck[axis]:
            factors[axis] = 1.0
            rest = target - errors[axis]
            if rest > 0 and not stuck[other]:  # the other axis may use what this one leaves
                factors[other] = math.sqrt(errors[other] / rest)
    factors = {axis: 1.0 if stuck[axis] or f <= 1.0 else min(8.0, max(1.25, f)) for axis, f in factors.items()}
    return factors if max(factors.values()) > 1.0 else None


def _largest_within_limit(n_v: int, n_c: int, new_v: int, new_c: int, columns: int) -> tuple[int, int]:
    """The axes' sizes scaled back towards ``(n_v, n_c)`` until the table fits in `MAX_VALUES`."""
    grown = [axis for axis, (old, new) in {"v": (n_v, new_v), "c": (n_c, new_c)}.items() if new > old]
    scale = (MAX_VALUES / (new_v * new_c * columns)) ** (1.0 / len(grown))
    if "v" in grown:
        new_v = max(n_v, math.floor((new_v - 1) * scale) + 1)
    if "c" in grown:
        new_c = max(n_c, math.floor((new_c - 1) * scale) + 1)
    while new_v * new_c * columns > MAX_VALUES and (new_v > n_v or new_c > n_c):  # the end points' +1
        if new_v > n_v and (new_v >= new_c or new_c == n_c):
            new_v -= 1
        else:
            new_c -= 1
    return new_v, new_c


def build_tables_2d(
    curves: Mapping[str, Curve2D],
    *,
    v_range: tuple[float, float] = DEFAULT_RANGE,
    conc_range: tuple[float, float] = DEFAULT_CONC_RANGE,
    tolerance: float = DEFAULT_TOLERANCE,
    label: str = "",
) -> Tables2D:
    """Tabulate curves of (v, conc) on a grid fine enough for ``tolerance``.

    Parameters
    ----------
    curves : mapping of str to callable
        ``f(v, conc)`` with v in V and conc in mol/m^3 (mM), broadcasting.
    v_range, conc_range : (float, float)
        The grid's ends; ``conc_range[0] > 0`` (the axis is logarithmic).
    tolerance : float
        Bound on the measured interpolation error (relative for names ending
        in ``tau``, absolute for the others).

    Raises
    ------
    TableError
        A curve is not finite, a time constant is not positive, or a range is invalid.
    """
    if not (tolerance > 0 and math.isfinite(tolerance)):
        raise TableError(f"tolerance must be a positive number, got {tolerance!r}")
    if not (0 < conc_range[0] < conc_range[1] and math.isfinite(conc_range[1])):
        raise TableError(f"concentration range {conc_range!r} must be positive and increasing")
    labelled = {f"{label}{name}": curve for name, curve in curves.items()}
    decades = math.log10(conc_range[1] / conc_range[0])
    n_v = max(2, math.ceil((v_range[1] - v_range[0]) / _START_V_STEP) + 1)
    n_c = max(2, math.ceil(decades * _START_PER_DECADE) + 1)
    previous = {"v": math.inf, "c": math.inf}
    at_limit = False
    while True:
        v, c = _axes(v_range, conc_range, n_v, n_c)
        table = LookupTable2D(_evaluate(labelled, v, c), *v_range, *conc_range, "log")
        worst, along = _measure(labelled, table)
        factors = None if at_limit else _refinement(along, previous, tolerance)
        if factors is None:
            break
        new_v, new_c = math.ceil((n_v - 1) * factors["v"]) + 1, math.ceil((n_c - 1) * factors["c"]) + 1
        if new_v * new_c * len(curves) > MAX_VALUES:
            # one last grid, as fine as the size limit allows in the axes being refined
            new_v, new_c = _largest_within_limit(n_v, n_c, new_v, new_c, len(curves))
            at_limit = True
            if new_v * new_c <= n_v * n_c:
                break
        previous = {axis: along[axis] if factors[axis] > 1.0 else previous[axis] for axis in previous}
        n_v, n_c = new_v, new_c
    errors = {name: CurveError(*worst[f"{label}{name}"][:2], worst[f"{label}{name}"][3]) for name in curves}
    at_conc = {name: worst[f"{label}{name}"][2] for name in curves}
    result = Tables2D(table, tuple(curves), errors, at_conc, tolerance)
    if result.max_error > tolerance:
        name = max(errors, key=lambda k: errors[k].max_error)
        stopped_by = f"the size limit, {MAX_VALUES} values" if at_limit else "the error stopped shrinking: a jump?"
        warnings.warn(
            f"{label}{name}: interpolation error {errors[name].max_error:.3g} at v = {errors[name].at * 1e3:.6g} mV, "
            f"conc = {at_conc[name]:.3g} mM exceeds the tolerance {tolerance:g} with a {n_v} x {n_c} grid "
            f"({stopped_by})",
            GridWarning,
            stacklevel=2,
        )
    return result
