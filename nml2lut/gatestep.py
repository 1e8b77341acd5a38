"""gatestep: inf/tau tables -> the exponential-Euler gate update tabulated for one time step.

For a gate ``dx/dt = (inf(v) - x)/tau(v)`` exponential Euler's step over
``dt`` is exact for a constant ``v``::

    x <- a(v)*x + b(v),   a = exp(-dt/tau),   b = inf*(1 - a)

`step_table` tabulates ``a`` and ``b`` on the grid of the inf/tau table they
come from (at every node, and at the left limit of every node, so a curve
that jumps at a breakpoint keeps its jump), so that the update needs no
``exp`` at run time.  The grid was refined for inf and tau; `step_errors`
measures how far the interpolated ``a`` and ``b`` are from the same
quantities computed from the interpolated inf and tau, at three points in
every interval, as the tables measure their own error.

Pure numpy: the Brian2 side is `nml2lut.lookup` (the columns of a lookup
Function) and `nml2lut.stepper` (the state updater that uses them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import TableError

__all__ = ["step_columns", "step_table", "step_errors"]

_SUBSAMPLES = (0.25, 0.5, 0.75)  # as in tables.py


def step_columns(n_columns: int, steps: Sequence[tuple[int, int]]) -> dict[tuple[int, int], tuple[int, int]]:
    """Column indices of ``a`` and ``b`` for each (inf, tau) pair: appended after the table's own columns.

    Raises
    ------
    TableError
        A pair names a column the table does not have, or a pair is repeated.
    """
    columns = {}
    for p, (inf, tau) in enumerate(steps):
        if not (0 <= inf < n_columns and 0 <= tau < n_columns):
            raise TableError(f"gate step pair ({inf}, {tau}) is out of range for a table of {n_columns} column(s)")
        if (inf, tau) in columns:
            raise TableError(f"gate step pair ({inf}, {tau}) is given twice")
        columns[(inf, tau)] = (n_columns + 2 * p, n_columns + 2 * p + 1)
    return columns


def _factors(inf: np.ndarray, tau: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(all="ignore"):
        a = np.exp(-dt / tau)
    return a, inf * (1.0 - a)


def step_table(
    values: np.ndarray, slopes: np.ndarray, steps: Sequence[tuple[int, int]], dt: float
) -> tuple[np.ndarray, np.ndarray]:
    """Values and slopes of the table with ``a`` and ``b`` of every pair appended as columns.

    Parameters
    ----------
    values, slopes : np.ndarray, shape (n_points, n_columns)
        The inf/tau table as `nml2lut.lookup.LookupTable` holds it (tau in s).
    steps : sequence of (int, int)
        (inf column, tau column) of every gate.
    dt : float
        The time step (s).

    Returns
    -------
    (np.ndarray, np.ndarray)
        Shape (n_points, n_columns + 2*len(steps)): the original columns
        first, then ``a``, ``b`` per pair (see `step_columns`).

    Raises
    ------
    TableError
        `dt` is not a positive finite number, or a time constant is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> values = np.array([[0.0, 1e-3], [1.0, 2e-3]])  # inf, tau at two points
    >>> v, s = step_table(values, np.diff(values, axis=0, append=values[-1:]), [(0, 1)], 1e-4)
    >>> v.shape, round(float(v[1, 2]), 6), round(float(v[1, 3]), 6)
    ((2, 4), 0.951229, 0.048771)
    """
    if not (isinstance(dt, float) and np.isfinite(dt) and dt > 0.0):
        raise TableError(f"a gate step needs a positive time step, got dt = {dt!r}")
    step_columns(values.shape[1], steps)
    new_values, new_slopes = [values], [slopes]
    for inf, tau in steps:
        if not np.all(values[:, tau] > 0.0) or not np.all(values[:, tau] + slopes[:, tau] > 0.0):
            raise TableError(f"table column {tau} is not a positive time constant everywhere")
        a, b = _factors(values[:, inf], values[:, tau], dt)
        # left limits at the next node: the end of each interval
        a_end, b_end = _factors(values[:, inf] + slopes[:, inf], values[:, tau] + slopes[:, tau], dt)
        a_end[-1], b_end[-1] = a[-1], b[-1]  # constant beyond the last node
        new_values.append(np.column_stack([a, b]))
        new_slopes.append(np.column_stack([a_end - a, b_end - b]))
    return np.hstack(new_values), np.hstack(new_slopes)


def step_errors(
    values: np.ndarray, slopes: np.ndarray, steps: Sequence[tuple[int, int]], dt: float
) -> dict[tuple[int, int], float]:
    """Per pair, the largest error of the tabulated step against the step from interpolated inf and tau.

    The error of one step ``a*x + b`` over all ``x`` in [0, 1] is at most
    ``max(|da|, |da + db|)``; returned relative to ``1 - a`` (the size of
    the step's pull towards inf, so 1e-4 means the gate relaxes 0.01 % too
    fast or slow), the worst of the three points of every interval.
    """
    table_v, table_s = step_table(values, slopes, steps, dt)
    n = values.shape[1]
    errors = {}
    for p, (inf, tau) in enumerate(steps):
        worst = 0.0
        for w in _SUBSAMPLES:
            inf_w = values[:-1, inf] + w * slopes[:-1, inf]
            tau_w = values[:-1, tau] + w * slopes[:-1, tau]
            a, b = _factors(inf_w, tau_w, dt)
            a_t = table_v[:-1, n + 2 * p] + w * table_s[:-1, n + 2 * p]
            b_t = table_v[:-1, n + 2 * p + 1] + w * table_s[:-1, n + 2 * p + 1]
            da, db = a_t - a, b_t - b
            bound = np.maximum(np.abs(da), np.abs(da + db)) / np.maximum(1.0 - a, np.finfo(float).tiny)
            worst = max(worst, float(np.max(bound, initial=0.0)))
        errors[(inf, tau)] = worst
    return errors
