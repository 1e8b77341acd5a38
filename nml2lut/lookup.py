"""lookup: tables -> brian2.Function (numpy, Cython and C++ standalone from one template each).

A `LookupTable` holds curves sampled on a uniform grid of one variable (the
membrane voltage, usually); `make_lookup_function` turns it into a Brian2
`Function` ``name(x, k)`` that interpolates column ``k`` linearly at ``x``.

Out-of-range policy: outside ``[x_min, x_max]`` the value is clamped to the
edge value (constant extrapolation); a NaN ``x`` gives NaN, in every target.

How the targets get the table (the `brian2.TimedArray` way):

* numpy: a unitless closure registered as the numpy implementation, called
  directly by the generated code (Brian2's unit-checking wrapper formats the
  whole result into a string on every call: 20x slower at 1000 neurons).
* Cython and C++ (used by ``cpp_standalone``): code from one template per
  language with the scalars baked in as full-precision literals; the data array
  travels through the implementation's namespace under a key unique to the
  function, so the code text never contains table values (Brian2's Cython
  cache is keyed by code text) and ``cpp_standalone`` writes the array to its
  own ``static_arrays`` directory.

The compiled array stores, for every grid point and column, the value and the
slope to the next point, interleaved so that all columns of one point are
adjacent: one lookup reads 16 adjacent bytes.  The helpers are ``static
inline`` and pure, so ``f(v, 0)``, ``f(v, 1)``, ... of one ``v`` share one
position computation after gcc's common-subexpression elimination.  Cython
gets the same C code, forced inline (see `_CYTHON_TEMPLATE`); numpy keeps the
position of the last array it was called with.

A `LookupFunction` made with ``steps`` (pairs of inf and tau columns) also
serves, as extra columns, the exponential-Euler factors of those gates for
the dt of the code object that calls it (`nml2lut.gatestep`): its
implementations are made per code object, as `brian2.TimedArray`'s are, and
the array key carries a digest of dt.  `nml2lut.stepper` reads those columns.

A `LookupTable2D` holds curves of two variables (voltage and a concentration)
on a grid uniform in ``x`` and in ``log(y)`` (or in ``y``);
`make_lookup_function_2d` makes ``name(x, y, k)``, bilinear in ``x`` and
``log(y)``.  Both axes are clamped to the edges, NaN in either gives NaN, and
on a log axis ``y <= 0`` (a concentration that reached 0) reads the first grid
point ``y_min``.  The compiled array is the table itself, ``values[i, j, k]``
point-major (all columns of one point adjacent): a lookup reads the columns
of points ``(i, j)`` and ``(i, j+1)`` from one place and those of ``(i+1, j)``
and ``(i+1, j+1)`` from another, ``n_y*n_columns`` doubles on.  Storing four
coefficients per point and column instead (value, two slopes, cross term:
one place per lookup) takes four times the memory, 13.5 MB for 1501 voltages
x 141 concentrations x 2 columns, and measured twice as slow as the bare
values (3.4 MB) when every neuron moved to a new cell on every step (the
loads missed the cache); with cache-resident cells both ran alike.  The same
template per language renders both dimensions: one position helper serves
every axis.
"""

from __future__ import annotations

import functools
import hashlib
import keyword
import math
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import brian2
import numpy as np

from . import gatestep
from .errors import TableError

__all__ = [
    "LookupTable",
    "LookupTable2D",
    "LookupFunction",
    "interpolate",
    "interpolate2d",
    "make_lookup_function",
    "make_lookup_function_2d",
    "make_where_function",
    "make_exprel_function",
    "make_divide_function",
    "make_dt_check_function",
    "DT_CHECK_FUNCTION_NAME",
    "EXPREL_FUNCTION_NAME",
    "check_function_name",
    "WHERE_FUNCTION_NAME",
]

#: Name of the function made by `make_where_function`, as written in equations.
WHERE_FUNCTION_NAME = "nml2lut_where"

#: Prefix of every C/Cython symbol this module generates besides the function
#: itself; user names may not start with it, so generated names never collide.
_RESERVED_PREFIX = "nml2lut_"

_NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

# Words that cannot name a C++/Cython function (Python's come from `keyword`).
_C_LIKE_KEYWORDS = frozenset(
    """alignas alignof and and_eq asm auto bint bitand bitor bool break by case catch
    cdef char char16_t char32_t char8_t cimport class compl concept const consteval
    constexpr constinit const_cast continue co_await co_return co_yield cpdef
    ctypedef decltype default delete do double dynamic_cast else enum explicit
    export extern false float for friend gil goto if include inline int long
    mutable namespace new noexcept nogil not not_eq nullptr object operator or
    or_eq private protected public readonly register reinterpret_cast requires
    restrict return short signed sizeof static static_assert static_cast struct
    switch template this thread_local throw true try typedef typeid typename union
    unsigned using virtual void volatile wchar_t while xor xor_eq NULL NAN INFINITY
    main""".split()
)


@dataclass(frozen=True, eq=False)
class LookupTable:
    """Curves sampled on a uniform grid of one variable.

    Parameters
    ----------
    values : array_like, shape (n_points, n_columns)
        ``values[j, k]`` is curve ``k`` at ``x_j = x_min + j*(x_max - x_min)/(n_points - 1)``.
        Stored as a read-only, C-contiguous float64 copy.
    x_min, x_max : float
        Ends of the grid, in SI units (volt for a voltage table).
    slopes : array_like, shape (n_points, n_columns), optional
        ``slopes[j, k]``: the change of curve ``k`` across interval ``j``, so
        that ``x`` in that interval gives ``values[j, k] + w * slopes[j, k]``
        (``w`` the fraction of the interval).  Default: the difference to the
        next point (0 for the last point).  Explicit slopes let a curve jump at
        a grid point: the interval before it ends at the left limit.

    Raises
    ------
    TableError
        If `values` is not 2-D, has fewer than 2 points or no column, contains a
        NaN or infinity, or the range is empty or not finite.

    Examples
    --------
    >>> import numpy as np
    >>> table = LookupTable(np.array([[0.0, 1.0], [2.0, 3.0]]), x_min=-0.1, x_max=0.05)
    >>> table.n_points, table.n_columns
    (2, 2)
    """

    values: np.ndarray
    x_min: float
    x_max: float
    slopes: np.ndarray | None = None

    def __post_init__(self) -> None:
        values = np.array(self.values, dtype=np.float64, order="C", copy=True)
        values.flags.writeable = False
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "x_min", float(self.x_min))
        object.__setattr__(self, "x_max", float(self.x_max))
        _check_shape(values)
        _check_range(self.x_min, self.x_max, values.shape[0])
        _check_finite(values, self.x_min, self.x_max)
        if self.slopes is None:
            slopes = _slopes(values)
        else:
            slopes = np.array(self.slopes, dtype=np.float64, order="C", copy=True)
            if slopes.shape != values.shape:
                raise TableError(f"table slopes have shape {slopes.shape}, values {values.shape}")
            _check_finite(slopes, self.x_min, self.x_max)
        slopes.flags.writeable = False
        object.__setattr__(self, "slopes", slopes)

    @property
    def n_points(self) -> int:
        """Number of grid points (rows of `values`)."""
        return self.values.shape[0]

    @property
    def n_columns(self) -> int:
        """Number of curves (columns of `values`)."""
        return self.values.shape[1]

    @property
    def x(self) -> np.ndarray:
        """The grid, ``x_min + j*(x_max - x_min)/(n_points - 1)``."""
        return np.linspace(self.x_min, self.x_max, self.n_points)

    def _axes(self) -> tuple[_Axis, ...]:
        return (_Axis.uniform(self.x_min, self.x_max, self.n_points),)

    def _compiled(self) -> np.ndarray:
        """The array the compiled code reads: (value, slope) per point and column."""
        return _interleaved(self)


class _Axis(NamedTuple):
    """A grid axis as the lookup sees it: position ``(u - start)*inv_step`` in ``[0, last]``.

    On a log axis ``u`` is ``log(y)`` and ``start`` is ``log(y_min)``.
    """

    start: float
    inv_step: float
    last: float
    log: bool

    @classmethod
    def uniform(cls, lo: float, hi: float, n_points: int, log: bool = False) -> _Axis:
        if log:
            lo, hi = math.log(lo), math.log(hi)
        return cls(lo, _inverse_step(lo, hi, n_points), float(n_points - 1), log)


def _check_shape(values: np.ndarray) -> None:
    if values.ndim != 2:
        raise TableError(f"table values must be a 2-D array (n_points, n_columns), got shape {values.shape}")
    if values.shape[0] < 2:
        raise TableError(f"a table needs at least 2 points, got {values.shape[0]}")
    if values.shape[1] < 1:
        raise TableError("a table needs at least 1 column, got 0")


def _check_range(x_min: float, x_max: float, n_points: int, axis: str = "x", log: bool = False) -> None:
    lo, hi = f"{axis}_min={x_min!r}", f"{axis}_max={x_max!r}"
    if not (math.isfinite(x_min) and math.isfinite(x_max)):
        raise TableError(f"table range must be finite, got {lo}, {hi}")
    if not x_max > x_min:
        raise TableError(f"table range is empty: {hi} is not above {lo}")
    if log and not x_min > 0.0:
        raise TableError(f"a log {axis} axis needs {axis}_min > 0, got {lo}")
    if log:
        x_min, x_max = math.log(x_min), math.log(x_max)
    with np.errstate(all="ignore"):  # a zero step divides as numpy floats: inf, no exception
        inverse = np.float64(n_points - 1) / np.float64(x_max - x_min)
    if not math.isfinite(inverse):
        raise TableError(f"table step is too small to invert: {lo}, {hi}")


def _check_finite(values: np.ndarray, x_min: float, x_max: float) -> None:
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
        j, k = (int(n) for n in bad[0])
        x_j = x_min + j * (x_max - x_min) / (values.shape[0] - 1)
        raise TableError(
            f"table column {k} is {values[j, k]} at point {j} (x = {x_j!r}); {len(bad)} value(s) are not finite"
        )


def _slopes(values: np.ndarray) -> np.ndarray:
    """Difference to the next point; the last point gets 0 (constant extrapolation)."""
    slopes = np.zeros_like(values)
    slopes[:-1] = np.diff(values, axis=0)
    return slopes


def _interpolate_prepared(
    column: np.ndarray, slope: np.ndarray, x_min: float, inv_step: float, x: np.ndarray
) -> np.ndarray:
    """Interpolate one column given its slopes; the numerical core of every target.

    In-place operations on one work array: allocation dominates at 10,000 elements.
    """
    row, position = _grid_position(x, x_min, inv_step, float(column.shape[0] - 1))
    position *= slope.take(row)
    position += column.take(row)
    return position if position.ndim else position[()]


def _grid_position(u: np.ndarray, start: float, inv_step: float, last: float) -> tuple[np.ndarray, np.ndarray]:
    """Row and weight of the next point for `u` on an axis: the position helper of the numpy target.

    The position ``(u - start)*inv_step`` is clamped to ``[0, last]``; the weight
    is its fractional part, in a fresh array the caller may overwrite.
    """
    position = np.empty(np.shape(u), dtype=np.float64)
    np.subtract(u, start, out=position)
    position *= inv_step
    np.clip(position, 0.0, last, out=position)  # NaN passes through
    # fmax returns the non-NaN argument, so NaN positions get row 0 instead of
    # an undefined integer; the weight stays NaN and so does the result.
    row = np.fmax(position, 0.0).astype(np.intp)
    np.subtract(position, row, out=position)  # now the weight of the next point
    return row, position


def _inverse_step(x_min: float, x_max: float, n_points: int) -> float:
    return (n_points - 1) / (x_max - x_min)


def interpolate(
    table: np.ndarray, x_min: float, x_max: float, x: np.ndarray, column: int, slopes: np.ndarray | None = None
) -> np.ndarray:
    """Linear interpolation of one column of a table on a uniform grid.

    Parameters
    ----------
    table : np.ndarray, shape (n_points, n_columns)
        Values on the grid ``x_j = x_min + j*(x_max - x_min)/(n_points - 1)``.
    x_min, x_max : float
        Ends of the grid.
    x : np.ndarray
        Where to interpolate (any shape).
    column : int
        Which column.
    slopes : np.ndarray, optional
        Per-interval slopes (see `LookupTable`); default from the values.

    Returns
    -------
    np.ndarray
        Same shape as `x`. Outside ``[x_min, x_max]`` the edge value
        (constant extrapolation); NaN where `x` is NaN.

    Raises
    ------
    TableError
        If the table is invalid (see `LookupTable`) or `column` is out of range.

    Examples
    --------
    >>> import numpy as np
    >>> table = np.array([[0.0], [10.0], [20.0]])
    >>> interpolate(table, 0.0, 2.0, np.array([-1.0, 0.5, 1.25, 3.0, np.nan]), 0)
    array([ 0. ,  5. , 12.5, 20. ,  nan])
    """
    table = LookupTable(table, x_min, x_max, slopes)
    column = _check_column(column, table.n_columns)
    values = table.values[:, column]
    inv_step = _inverse_step(table.x_min, table.x_max, table.n_points)
    return _interpolate_prepared(values, table.slopes[:, column], table.x_min, inv_step, x)


def _check_column(column: object, n_columns: int) -> int:
    if isinstance(column, (bool, np.bool_)) or not isinstance(column, (int, np.integer)):
        raise TableError(f"column index must be an integer, got {column!r}")
    if not 0 <= column < n_columns:
        raise TableError(f"column index {column} is out of range for a table of {n_columns} column(s)")
    return int(column)


@dataclass(frozen=True, eq=False)
class LookupTable2D:
    """Curves of two variables on a grid uniform in ``x`` and in ``log(y)`` (or ``y``).

    Made for gates whose rates depend on the voltage and on a concentration,
    which spans decades (1e-6 to 10 mM): hence the log-spaced ``y`` default.

    Parameters
    ----------
    values : array_like, shape (n_x, n_y, n_columns)
        ``values[i, j, k]`` is curve ``k`` at ``(x[i], y[j])`` (see `x` and `y`).
        Stored as a read-only, C-contiguous float64 copy.
    x_min, x_max : float
        Ends of the uniform ``x`` grid, in SI units (volt for a voltage).
    y_min, y_max : float
        Ends of the ``y`` grid, in SI units (mol/m^3, which is mM, for a
        concentration); ``y_min > 0`` on a log axis.
    y_scale : {"log", "linear"}
        Spacing of the ``y`` grid: uniform in ``log(y)`` (default) or in ``y``.

    Raises
    ------
    TableError
        If `y_scale` is not "log" or "linear", `values` is not 3-D, has fewer
        than 2 points on an axis or no column, contains a NaN or infinity, a
        range is empty or not finite, or a log axis has ``y_min <= 0``.

    Examples
    --------
    >>> import numpy as np
    >>> table = LookupTable2D(np.zeros((3, 5, 2)), x_min=-0.1, x_max=0.05, y_min=1e-6, y_max=0.01)
    >>> table.n_x, table.n_y, table.n_columns
    (3, 5, 2)
    >>> print(table.y)
    [1.e-06 1.e-05 1.e-04 1.e-03 1.e-02]
    """

    values: np.ndarray
    x_min: float
    x_max: float
    y_min: float
    y_max: float
    y_scale: Literal["log", "linear"] = "log"

    def __post_init__(self) -> None:
        if self.y_scale not in ("log", "linear"):
            raise TableError(f"y_scale must be 'log' or 'linear', got {self.y_scale!r}")
        values = np.array(self.values, dtype=np.float64, order="C", copy=True)
        values.flags.writeable = False
        object.__setattr__(self, "values", values)
        for attribute in ("x_min", "x_max", "y_min", "y_max"):
            object.__setattr__(self, attribute, float(getattr(self, attribute)))
        _check_shape_2d(values)
        _check_range(self.x_min, self.x_max, self.n_x)
        _check_range(self.y_min, self.y_max, self.n_y, axis="y", log=self.y_scale == "log")
        _check_finite_2d(self)

    @property
    def n_x(self) -> int:
        """Number of grid points in ``x``."""
        return self.values.shape[0]

    @property
    def n_y(self) -> int:
        """Number of grid points in ``y``."""
        return self.values.shape[1]

    @property
    def n_columns(self) -> int:
        """Number of curves."""
        return self.values.shape[2]

    @property
    def x(self) -> np.ndarray:
        """The ``x`` grid, ``x_min + i*(x_max - x_min)/(n_x - 1)``."""
        return np.linspace(self.x_min, self.x_max, self.n_x)

    @property
    def y(self) -> np.ndarray:
        """The ``y`` grid: ``y_min*(y_max/y_min)**(j/(n_y - 1))`` (log) or uniform (linear)."""
        if self.y_scale == "log":
            return np.geomspace(self.y_min, self.y_max, self.n_y)
        return np.linspace(self.y_min, self.y_max, self.n_y)

    def _axes(self) -> tuple[_Axis, ...]:
        return (
            _Axis.uniform(self.x_min, self.x_max, self.n_x),
            _Axis.uniform(self.y_min, self.y_max, self.n_y, log=self.y_scale == "log"),
        )

    def _compiled(self) -> np.ndarray:
        """The array the compiled code reads: a flat view of `values`, no copy."""
        return self.values.reshape(-1)


def _check_shape_2d(values: np.ndarray) -> None:
    if values.ndim != 3:
        raise TableError(f"2-D table values must be a 3-D array (n_x, n_y, n_columns), got shape {values.shape}")
    for axis, n in zip("xy", values.shape[:2], strict=True):
        if n < 2:
            raise TableError(f"a 2-D table needs at least 2 points in {axis}, got {n}")
    if values.shape[2] < 1:
        raise TableError("a 2-D table needs at least 1 column, got 0")


def _check_finite_2d(table: LookupTable2D) -> None:
    bad = np.argwhere(~np.isfinite(table.values))
    if bad.size:
        i, j, k = (int(n) for n in bad[0])
        raise TableError(
            f"table column {k} is {table.values[i, j, k]} at point ({i}, {j}) "
            f"(x = {float(table.x[i])!r}, y = {float(table.y[j])!r}); {len(bad)} value(s) are not finite"
        )


def interpolate2d(table: LookupTable2D, x: np.ndarray, y: np.ndarray, column: int) -> np.ndarray:
    """Bilinear interpolation of one column of a 2-D table, in ``x`` and ``log(y)`` (or ``y``).

    Parameters
    ----------
    table : LookupTable2D
        The curves.
    x, y : np.ndarray
        Where to interpolate; shapes that broadcast together.
    column : int
        Which column.

    Returns
    -------
    np.ndarray
        The broadcast shape of `x` and `y`.  Each coordinate is clamped to its
        grid (constant extrapolation beyond the edges); on a log axis ``y <= 0``
        reads ``y_min``; NaN where `x` or `y` is NaN.

    Raises
    ------
    TableError
        If `table` is not a `LookupTable2D` or `column` is out of range.

    Examples
    --------
    >>> import numpy as np
    >>> values = np.array([[[0.0], [10.0]], [[20.0], [40.0]]])  # corners of one cell
    >>> table = LookupTable2D(values, x_min=0.0, x_max=1.0, y_min=1e-3, y_max=1e-1)
    >>> interpolate2d(table, np.array([0.5, 0.5, 2.0, np.nan]), np.array([1e-2, 0.0, 1.0, 1e-2]), 0)
    array([17.5, 10. , 40. ,  nan])
    """
    if not isinstance(table, LookupTable2D):
        raise TableError(f"interpolate2d needs a LookupTable2D, got {type(table).__name__}")
    column = _check_column(column, table.n_columns)
    return _interpolate2d_prepared(table._compiled(), table._axes(), table.values.shape, x, y, column)


def _interpolate2d_prepared(
    flat: np.ndarray, axes: tuple[_Axis, _Axis], shape: tuple[int, int, int], x, y, column: int
) -> np.ndarray:
    """The numpy twin of the compiled code (`_READS`), reading the same flat array of values."""
    x, y = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    if axes[1].log:
        with np.errstate(divide="ignore"):
            y = np.log(np.maximum(y, 0.0))  # maximum keeps NaN; y <= 0 -> -inf -> the first point
    i_x, f_x = _grid_position(x, *axes[0][:3])
    i_y, f_y = _grid_position(y, *axes[1][:3])
    n_x, n_y, n_columns = shape
    c = i_x * n_y
    c += i_y
    c *= n_columns
    c += column
    d_x = np.where(i_x < n_x - 1, n_y * n_columns, 0)
    d_y = np.where(i_y < n_y - 1, n_columns, 0)
    c0, c_y, c_x, c_xy = (flat.take(c + d) for d in (0, d_y, d_x, d_x + d_y))
    a = c0 + f_y * (c_y - c0)  # at x_i, interpolated in y
    b = c_x + f_y * (c_xy - c_x)  # at x_(i+1)
    result = a + f_x * (b - a)
    return result if result.ndim else result[()]


def check_function_name(name: str) -> str:
    """Check that `name` can name a generated function in every target.

    Parameters
    ----------
    name : str
        A letter, then letters, digits and underscores; not a C, C++, Cython
        or Python keyword, without ``__`` (reserved in C++) and not starting
        with ``nml2lut_`` (reserved for the generated helpers).

    Returns
    -------
    str
        `name`, unchanged.

    Raises
    ------
    TableError
        Naming the rule `name` breaks.
    """
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise TableError(
            f"function name {name!r} is not valid: expected a letter followed by letters, digits or underscores"
        )
    if "__" in name:
        raise TableError(f"function name {name!r} contains '__', which C++ reserves")
    if name in _C_LIKE_KEYWORDS or keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise TableError(f"function name {name!r} is a C, C++, Cython or Python keyword")
    if name.startswith(_RESERVED_PREFIX):
        raise TableError(f"function name {name!r} starts with {_RESERVED_PREFIX!r}, which nml2lut reserves")
    return name


# One template per language renders the 1-D and the 2-D function: the same
# helpers (their constant arguments fold after inlining), per axis ``p_x, i_x,
# f_x`` (position, row, weight of the next point), then the read of the grid
# point's data that `_READS` gives for the table's dimension.
_CPP_TEMPLATE = string.Template("""
// nml2lut lookup table ${name}: ${shape} points x ${n_columns} columns, ${axes};
// per point and column ${layout}, all columns of one point adjacent.
static inline double nml2lut_pos_${name}(const double u, const double start, const double inv_step, const double last)
{
    // grid position clamped to [0, last]; NaN fails both tests and stays NaN
    const double p = (u - start) * inv_step;
    // two separate clamps: gcc then shares one index computation between lookups
    const double q = p < 0.0 ? 0.0 : p;
    return q > last ? last : q;
}
static inline int nml2lut_row_${name}(const double p)
{
    // (int)NaN is undefined behaviour: NaN reads row 0 and keeps a NaN weight
    return p == p ? (int)p : 0;
}
static inline double nml2lut_log_${name}(const double u)
{
    // coordinate on a log axis: u <= 0 lies below the grid (clamped to its first point); NaN stays NaN
    return u <= 0.0 ? -INFINITY : log(u);
}
static inline int nml2lut_next_${name}(const int row, const int last, const int stride)
{
    // offset to the next point along an axis; none after the last point, where the weight is 0
    return row < last ? stride : 0;
}
${places}static inline ${attributes}double ${name}(${table}${parameters}const int k)
{
    if (k < 0 || k >= ${n_columns})
        return NAN;
${body};
}
""")

# Cython: the C++ code above, verbatim, with the table pointer as an argument
# and forced inline.  Brian2's call ``name(v, k)`` is declared to Cython as the
# C macro ``nml2lut_call_<name>``, which passes the namespace array through a
# pointer to Brian2's own ``_namespace<key>`` variable (bound once when the
# module is imported; Brian2 sets the variable before every run).  A Cython
# ``cdef inline`` function instead is not inlined into Brian2's large loop
# function (gcc: "call is unlikely and code size would grow"): measured 7
# out-of-line lookups per neuron and step, 7x slower than C++.
_CYTHON_TEMPLATE = string.Template('''
cdef extern from *:
    """
${c_code}
static double **nml2lut_table_${name} = 0;
static inline void nml2lut_bind_${name}(double **table) { nml2lut_table_${name} = table; }
#define nml2lut_call_${name}(${arguments}k) nml2lut_c_${name}(*nml2lut_table_${name}, ${arguments}k)
    """
    void nml2lut_bind_${name}(double **table)
    double ${name} "nml2lut_call_${name}"(${parameters}const int k) noexcept nogil

nml2lut_bind_${name}(&_namespace${key})
''')


class _Language(NamedTuple):
    template: string.Template
    declaration: str  # a local variable with its value, as a format string


_CPP = _Language(_CPP_TEMPLATE, "const {type} {name} = {value};")
_CYTHON = _Language(_CYTHON_TEMPLATE, "cdef {type} {name} = {value}")

_ARGUMENTS = ("x", "y")

#: Per dimension: what the compiled array holds per point and column, and the
#: code that reads it: (type, name, value) of local variables, then the result.
#: In 2-D, ``a`` and ``b`` are the values at ``x_i`` and ``x_(i+1)``, each
#: interpolated in ``y``.  Placeholders: the `_render` keywords.
_READS = {
    1: (
        "(value, slope to the next point)",
        # The row's address, then constant offsets into it: every function reading one array computes
        # the same row address, which gcc then keeps in one register (with ``base + (row + offset)``
        # it kept ``base + offset`` of each function in a register of its own, and spilled).
        [("double *", "r", "_namespace{key} + i_x * {row}")],
        "r[{place}] + f_x * r[{place} + 1]",
    ),
    2: (
        "(value)",
        [
            ("double *", "c", "_namespace{key} + (i_x * {n_y} + i_y) * {n_columns} + k"),
            ("int", "d_x", "nml2lut_next_{name}(i_x, {last_x}, {n_y} * {n_columns})"),
            ("int", "d_y", "nml2lut_next_{name}(i_y, {last_y}, {n_columns})"),
            ("double", "a", "c[0] + f_y * (c[d_y] - c[0])"),
            ("double", "b", "c[d_x] + f_y * (c[d_x + d_y] - c[d_x])"),
        ],
        "a + f_x * (b - a)",
    ),
}


def _render(
    language: _Language,
    table: LookupTable | LookupTable2D,
    name: str,
    key: str | None = None,
    inline: bool = False,
    row: int | None = None,
    places: Sequence[int] | None = None,
) -> str:
    """Fill a template; floats as ``repr`` (shortest text that round-trips exactly).

    A 1-D table reads column ``k`` of point ``i`` (value, then slope) at
    ``i*row + place`` of the namespace array: by default its own array
    (``row`` twice its columns, ``place`` ``2*k``); in an array shared with
    other tables on the same grid (`nml2lut.rows`), ``places[k]`` of the
    shared rows (a constant array the compiler folds for a literal ``k``).
    """
    axes = table._axes()
    arguments = _ARGUMENTS[: len(axes)]
    shape = table.values.shape[:-1]
    lines, ranges = [], []
    for u, axis, (lo, hi) in zip(arguments, axes, _ranges(table), strict=True):
        coordinate = f"nml2lut_log_{name}({u})" if axis.log else u
        position = f"nml2lut_pos_{name}({coordinate}, {axis.start!r}, {axis.inv_step!r}, {axis.last!r})"
        lines += [("double", f"p_{u}", position), ("int", f"i_{u}", f"nml2lut_row_{name}(p_{u})")]
        lines.append(("double", f"f_{u}", f"p_{u} - i_{u}"))
        ranges.append(f"{'log ' if axis.log else ''}{u} in [{lo!r}, {hi!r}]")
    layout, reads, result = _READS[len(axes)]
    place, declaration = "2 * k", ""
    if places is not None:
        if len(places) != table.n_columns or row is None:
            raise TableError(f"{name}: a place in the shared rows for each of its {table.n_columns} columns is needed")
        layout += f" in rows of {row} values shared with other tables on this grid"
        place = f"{_RESERVED_PREFIX}places_{name}[k]"
        declaration = f"static const int {_RESERVED_PREFIX}places_{name}[] = {{{', '.join(map(str, places))}}};\n"
    row = 2 * table.n_columns if row is None else row
    fields = {"key": key or _namespace_key(name), "name": name, "n_columns": table.n_columns, "n_y": shape[-1]}
    fields |= {"row": row, "place": place}
    fields |= {f"last_{u}": n - 1 for u, n in zip(arguments, shape, strict=True)}
    lines += [(kind, variable, value.format(**fields)) for kind, variable, value in reads]
    body = [language.declaration.format(type=kind, name=variable, value=value) for kind, variable, value in lines]
    result = result.format(**fields)
    fields = dict(
        key=fields["key"],
        shape=" x ".join(str(n) for n in shape),
        n_columns=table.n_columns,
        axes=", ".join(ranges),
        layout=layout,
        parameters="".join(f"const double {u}, " for u in arguments),
        body="\n".join(f"    {line}" for line in [*body, f"return {result}"]),
        places=declaration,
    )
    if language is _CYTHON:
        c_code = _render(_CPP, table, f"nml2lut_c_{name}", key="_table", inline=True)
        return language.template.substitute(
            name=name, key=fields["key"], parameters=fields["parameters"], c_code=c_code,
            arguments="".join(f"{u}, " for u in arguments),
        )  # fmt: skip
    table_parameter = "const double * _namespace_table, " if inline else ""
    attributes = "__attribute__((always_inline)) " if inline else ""
    return language.template.substitute(name=name, attributes=attributes, table=table_parameter, **fields)


def _ranges(table: LookupTable | LookupTable2D) -> list[tuple[float, float]]:
    if isinstance(table, LookupTable):
        return [(table.x_min, table.x_max)]
    return [(table.x_min, table.x_max), (table.y_min, table.y_max)]


def _namespace_key(name: str) -> str:
    return f"{_RESERVED_PREFIX}values_{name}"


def _interleaved(table: LookupTable) -> np.ndarray:
    """Flat array of (value, slope) pairs, point-major: row j holds all columns of point j."""
    pairs = np.stack([table.values, table.slopes], axis=-1)
    return np.ascontiguousarray(pairs.reshape(-1))


# The last grid position computed on each grid (start, inverse step, last row): see _numpy_implementation.
_POSITIONS: dict[tuple[float, float, float], list] = {}


def _numpy_implementation(table: LookupTable, name: str) -> Callable:
    """A unitless closure over per-column contiguous values and slopes.

    The grid position of the last ``x`` is kept, per grid (shared by every
    lookup function on the same grid, see `nml2lut.share_grid`): Brian2's
    numpy code calls ``f(v, 0)``, ``f(v, 1)``, ``g(v, 0)``... with the same
    array ``v``, and the position is most of the work.  It is reused only for
    the same array object with the same contents (compared with a private
    copy: an array may be changed in place between calls).
    """
    columns = np.ascontiguousarray(table.values.T)
    slopes = np.ascontiguousarray(table.slopes.T)
    x_min = table.x_min
    inv_step = _inverse_step(table.x_min, table.x_max, table.n_points)
    n_columns = table.n_columns
    last = float(table.n_points - 1)
    cache = _POSITIONS.setdefault((x_min, inv_step, last), [None, None, None, None])  # x, its copy, row, weight

    def position(x):
        if x is cache[0] and np.array_equal(x, cache[1]):
            return cache[2], cache[3]
        row, weight = _grid_position(x, x_min, inv_step, last)
        cache[:] = (x, x.copy(), row, weight)
        return row, weight

    def lookup(x, k):
        k = _literal_column(name, k, n_columns)
        if not isinstance(x, np.ndarray) or x.ndim == 0:
            return _interpolate_prepared(columns[k], slopes[k], x_min, inv_step, x)
        row, weight = position(x)
        result = slopes[k].take(row)
        result *= weight
        result += columns[k].take(row)
        return result

    lookup.__name__ = name
    return lookup


def _literal_column(name: str, k: object, n_columns: int) -> int:
    if np.ndim(k) != 0:
        raise TableError(f"{name}: the column index must be an integer literal, got an array")
    return _check_column(k.item() if isinstance(k, np.ndarray) else k, n_columns)


def _add_implementations(function: brian2.Function, numpy_lookup: Callable, table, name: str) -> None:
    """numpy, C++ and Cython implementations; the compiled ones share one namespace array."""
    # Registering the closure as code (not via add_numpy_implementation) keeps
    # Brian2's unit-checking wrapper out of the per-step call.
    function.implementations.add_implementation("numpy", code=numpy_lookup)
    namespace = {_namespace_key(name): table._compiled()}
    for target, language in (("cpp", _CPP), ("cython", _CYTHON)):
        code = _render(language, table, name)
        function.implementations.add_implementation(target, code=code, namespace=namespace, name=name)


class LookupFunction(brian2.Function):
    """A lookup `brian2.Function` ``name(x, k)`` that may also serve the gate steps of its table.

    Made by `make_lookup_function`.  With ``steps`` (pairs of inf and tau
    columns), columns ``n_columns`` and up hold the exponential-Euler factors
    ``a = exp(-dt/tau)`` and ``b = inf*(1 - a)`` of each pair (see
    `nml2lut.gatestep`), tabulated when Brian2 generates code, for the time
    step of the group that calls the function: `nml2lut.stepper` reads them.

    Attributes
    ----------
    table : LookupTable
        The curves.
    steps : tuple of (int, int)
        The (inf column, tau column) pairs.
    """

    def __init__(self, pyfunc, table: LookupTable, steps: tuple[tuple[int, int], ...], **kwds) -> None:
        super().__init__(pyfunc, **kwds)
        self.table = table
        self.steps = steps
        self._step_columns = gatestep.step_columns(table.n_columns, steps)
        self._by_dt: dict[float, LookupTable] = {}

    def step_columns(self, inf: int, tau: int) -> tuple[int, int] | None:
        """Columns of ``a`` and ``b`` for the gate with these inf and tau columns (None: not a step pair)."""
        return self._step_columns.get((inf, tau))

    def for_dt(self, dt: float) -> LookupTable:
        """The table with the step columns for time step ``dt`` (s) appended; made once per dt."""
        dt = float(dt)
        if dt not in self._by_dt:
            values, slopes = gatestep.step_table(self.table.values, self.table.slopes, self.steps, dt)
            self._by_dt[dt] = LookupTable(values, self.table.x_min, self.table.x_max, slopes)
        return self._by_dt[dt]

    def step_errors(self, dt: float) -> dict[tuple[int, int], float]:
        """Per (inf, tau) pair, the measured error of the tabulated step at ``dt`` (see `gatestep.step_errors`)."""
        return gatestep.step_errors(self.table.values, self.table.slopes, self.steps, float(dt))


def _owner_dt(owner) -> float | None:
    clock = getattr(owner, "clock", None)
    return None if clock is None else float(clock.dt_)


def _digest(dt: float) -> str:
    return hashlib.sha256(np.float64(dt).tobytes()).hexdigest()[:10]


def table_for(function: LookupFunction, owner) -> LookupTable:
    """The table `function` reads in the code of `owner`: with its step columns for the owner's dt, if it has any."""
    dt = _owner_dt(owner)
    return function.table if dt is None or not function.steps else function.for_dt(dt)


def _add_step_implementations(function: LookupFunction, name: str) -> None:
    """Implementations made per code object, for the dt of its clock (as `brian2.TimedArray` does)."""

    def key_for(owner) -> str:
        dt = _owner_dt(owner)
        return _namespace_key(name) if dt is None else f"{_namespace_key(name)}_dt{_digest(dt)}"

    def numpy_code(owner):
        return _numpy_implementation(table_for(function, owner), name)

    function.implementations.add_dynamic_implementation("numpy", code=numpy_code)
    for target, language in (("cpp", _CPP), ("cython", _CYTHON)):
        function.implementations.add_dynamic_implementation(
            target,
            code=lambda owner, language=language: _render(language, table_for(function, owner), name, key_for(owner)),
            namespace=lambda owner: {key_for(owner): table_for(function, owner)._compiled()},
            name=name,
        )


def make_lookup_function(
    table: LookupTable, name: str, *, arg_unit: brian2.Unit = brian2.volt, steps: tuple[tuple[int, int], ...] = ()
) -> LookupFunction:
    """Make a Brian2 function ``name(x, k)``: column `k` of `table` interpolated at `x`.

    Parameters
    ----------
    table : LookupTable
        The curves; `x_min` and `x_max` are in the SI unit `arg_unit` stands for.
    name : str
        Name of the function in equations and generated code (see
        `check_function_name`); unique within one run.  Put the function in
        the group's namespace under this name.
    arg_unit : brian2.Unit, optional
        Unit of `x` (default: volt).
    steps : tuple of (int, int), optional
        (inf column, tau column) of every gate whose exponential-Euler step
        the function should also serve (see `LookupFunction`); then the
        implementations are made per code object, for its clock's dt.

    Returns
    -------
    LookupFunction
        A `brian2.Function` called in equations as ``name(v, 0)``: `x` with unit `arg_unit`, `k` an
        integer literal; returns a dimensionless float.  Implementations for
        numpy, Cython and C++ (``cpp_standalone``).  Outside the table the edge
        value, NaN for NaN.  An out-of-range `k` is a `TableError` in numpy and
        Python and NaN in the compiled targets, which cannot raise.

    Raises
    ------
    TableError
        If `name` is not a valid name or `table` is not a `LookupTable`.

    Examples
    --------
    >>> import numpy as np
    >>> from brian2 import NeuronGroup, mV
    >>> table = LookupTable(np.array([[0.0, 1.0], [1.0, 3.0]]), x_min=-0.08, x_max=0.0)
    >>> lut_Na = make_lookup_function(table, "lut_Na")
    >>> print(lut_Na(-40 * mV, 1))
    2.0
    >>> group = NeuronGroup(2, "v : volt\\nm_inf = lut_Na(v, 0) : 1",
    ...                     namespace={"lut_Na": lut_Na})
    >>> group.v = [-80, -20] * mV
    >>> print(group.m_inf[:])
    [0.   0.75]
    """
    check_function_name(name)
    if not isinstance(table, LookupTable):
        raise TableError(f"make_lookup_function needs a LookupTable, got {type(table).__name__}")
    numpy_lookup = _numpy_implementation(table, name)

    @brian2.check_units(x=arg_unit, k=1, result=1)
    def pyfunc(x, k):
        return numpy_lookup(np.asarray(x), k)

    pyfunc.__name__ = name
    function = LookupFunction(
        pyfunc,
        table,
        tuple((int(inf), int(tau)) for inf, tau in steps),
        arg_units=[arg_unit, 1],
        arg_types=["float", "integer"],
        return_unit=1,
        return_type="float",
        stateless=True,
    )
    if function.steps:
        _add_step_implementations(function, name)
    else:
        _add_implementations(function, numpy_lookup, table, name)
    return function


def _numpy_implementation_2d(table: LookupTable2D, name: str) -> Callable:
    """A unitless closure over the flat array of values the compiled targets read."""
    flat, axes, shape = table._compiled(), table._axes(), table.values.shape

    def lookup2d(x, y, k):
        return _interpolate2d_prepared(flat, axes, shape, x, y, _literal_column(name, k, shape[2]))

    lookup2d.__name__ = name
    return lookup2d


def make_lookup_function_2d(
    table: LookupTable2D,
    name: str,
    *,
    x_unit: brian2.Unit = brian2.volt,
    y_unit: brian2.Unit = brian2.mmolar,
) -> brian2.Function:
    """Make a Brian2 function ``name(x, y, k)``: column `k` of `table`, bilinear at ``(x, y)``.

    Parameters
    ----------
    table : LookupTable2D
        The curves; its ranges are in the SI units `x_unit` and `y_unit`
        stand for (volt; mol/m^3, which is mM).
    name : str
        Name of the function in equations and generated code (see
        `check_function_name`); unique within one run.  Put the function in
        the group's namespace under this name.
    x_unit, y_unit : brian2.Unit, optional
        Units of `x` and `y` (default: volt and mmolar).

    Returns
    -------
    brian2.Function
        Called in equations as ``name(v, ca, 0)``: `x` and `y` with units
        `x_unit` and `y_unit`, `k` an integer literal; returns a dimensionless
        float.  Implementations for numpy, Cython and C++ (``cpp_standalone``).
        Interpolation is bilinear in ``x`` and ``log(y)`` (or ``y``, see
        `LookupTable2D.y_scale`); each coordinate is clamped to its grid, on a
        log axis ``y <= 0`` reads ``y_min``, NaN in gives NaN.  An out-of-range
        `k` is a `TableError` in numpy and Python and NaN in the compiled
        targets, which cannot raise.

    Raises
    ------
    TableError
        If `name` is not a valid name or `table` is not a `LookupTable2D`.

    Examples
    --------
    >>> import numpy as np
    >>> from brian2 import NeuronGroup, mV, mM
    >>> values = np.array([[[0.0], [1.0]], [[2.0], [4.0]]])  # one cell: 2 voltages x 2 concentrations
    >>> table = LookupTable2D(values, x_min=-0.08, x_max=0.0, y_min=1e-4, y_max=1e-2)
    >>> lut_KCa = make_lookup_function_2d(table, "lut_KCa")
    >>> print(lut_KCa(-80 * mV, 1e-2 * mM, 0))
    1.0
    >>> group = NeuronGroup(2, "v : volt\\nca : mmolar\\nq_inf = lut_KCa(v, ca, 0) : 1",
    ...                     namespace={"lut_KCa": lut_KCa})
    >>> group.v = [-40, 10] * mV
    >>> group.ca = [1e-3, 0] * mM
    >>> print(group.q_inf[:])
    [1.75 2.  ]
    """
    check_function_name(name)
    if not isinstance(table, LookupTable2D):
        raise TableError(f"make_lookup_function_2d needs a LookupTable2D, got {type(table).__name__}")
    numpy_lookup = _numpy_implementation_2d(table, name)

    @brian2.check_units(x=x_unit, y=y_unit, k=1, result=1)
    def pyfunc(x, y, k):
        return numpy_lookup(np.asarray(x), np.asarray(y), k)

    pyfunc.__name__ = name
    function = brian2.Function(
        pyfunc,
        arg_units=[x_unit, y_unit, 1],
        arg_types=["float", "float", "integer"],
        return_unit=1,
        return_type="float",
        stateless=True,
    )
    _add_implementations(function, numpy_lookup, table, name)
    return function


_WHERE_CPP = f"""
static inline double {WHERE_FUNCTION_NAME}(const bool cond, const double a, const double b)
{{
    return cond ? a : b;
}}
"""

_WHERE_CYTHON = f"""
cdef inline double {WHERE_FUNCTION_NAME}(bint cond, double a, double b) noexcept nogil:
    return a if cond else b
"""


def _where_numpy(cond, a, b):
    # float like the compiled versions, also for integer a and b (no copy for float arrays)
    return np.where(cond, np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))


@functools.cache
def make_where_function() -> brian2.Function:
    """The function ``nml2lut_where(cond, a, b)``: `a` where `cond` is true, else `b`.

    `cond` is a boolean expression (``v > -40*mV``); `a` and `b` must have
    the same unit, which is the unit of the result.  Both `a` and `b` are
    evaluated.  Always the same object, so one run never holds two
    definitions of it.

    Returns
    -------
    brian2.Function
        To be put in a namespace under `WHERE_FUNCTION_NAME`.

    Examples
    --------
    >>> from brian2 import NeuronGroup
    >>> group = NeuronGroup(2, "x : 1\\ny = nml2lut_where(x > 0.5, 2*x, 3*x) : 1",
    ...                     namespace={"nml2lut_where": make_where_function()})
    >>> group.x = [0.25, 1.0]
    >>> print(group.y[:])
    [0.75 2.  ]
    """
    function = brian2.Function(
        brian2.where,
        arg_units=[1, None, "a"],
        arg_names=["cond", "a", "b"],
        arg_types=["boolean", "any", "any"],
        return_unit=lambda u_cond, u_a, u_b: u_a,
        return_type="float",
        stateless=True,
    )
    function.implementations.add_implementation("numpy", code=_where_numpy)
    function.implementations.add_implementation("cpp", code=_WHERE_CPP, name=WHERE_FUNCTION_NAME)
    function.implementations.add_implementation("cython", code=_WHERE_CYTHON, name=WHERE_FUNCTION_NAME)
    return function


#: Name of the function made by `make_exprel_function`, as written in equations.
EXPREL_FUNCTION_NAME = "nml2lut_exprel"

# Near 0 (|x| < 1/8: most neuron-steps of the voltage's exponential-Euler update) the
# Taylor series to x^9/10! (error below 3e-17, relative), in Estrin's order: no call, no
# division; elsewhere expm1(x)/x.  NaN fails both tests and stays NaN.
_EXPREL_CPP = f"""
static inline double {EXPREL_FUNCTION_NAME}(const double x)
{{
    // (exp(x) - 1)/x, 1 at 0
    if (x > -0.125 && x < 0.125)
    {{
        const double x2 = x * x, x4 = x2 * x2;
        const double p01 = 1.0 + x * (1.0/2.0), p23 = 1.0/6.0 + x * (1.0/24.0);
        const double p45 = 1.0/120.0 + x * (1.0/720.0), p67 = 1.0/5040.0 + x * (1.0/40320.0);
        const double p89 = 1.0/362880.0 + x * (1.0/3628800.0);
        return (p01 + x2 * p23) + x4 * ((p45 + x2 * p67) + x4 * p89);
    }}
    return expm1(x) / x;
}}
"""

_EXPREL_CYTHON = f"""
from libc.math cimport expm1
cdef inline double {EXPREL_FUNCTION_NAME}(double x) noexcept nogil:
    cdef double x2, x4
    if -0.125 < x < 0.125:
        x2 = x * x
        x4 = x2 * x2
        return ((1.0 + x * (1.0/2.0)) + x2 * (1.0/6.0 + x * (1.0/24.0))) + x4 * (
            ((1.0/120.0 + x * (1.0/720.0)) + x2 * (1.0/5040.0 + x * (1.0/40320.0)))
            + x4 * (1.0/362880.0 + x * (1.0/3628800.0)))
    return expm1(x) / x
"""


def _exprel_numpy(x):
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        return np.where(x == 0.0, 1.0, np.expm1(x) / np.where(x == 0.0, 1.0, x))


@functools.cache
def make_exprel_function() -> brian2.Function:
    """The function ``nml2lut_exprel(x) = (exp(x) - 1)/x`` (1 at 0), fast in every target.

    Brian2's built-in ``exprel`` has no numpy implementation of its own: its
    Python fallback checks units on every call, which dominates numpy runs.

    Examples
    --------
    >>> f = make_exprel_function()
    >>> print(f(0.0), round(float(f(1.0)), 6))
    1.0 1.718282
    """

    @brian2.check_units(x=1, result=1)
    def pyfunc(x):
        return _exprel_numpy(x)

    function = brian2.Function(pyfunc, arg_units=[1], return_unit=1, arg_types=["any"],
                               return_type="float", stateless=True)  # fmt: skip
    function.implementations.add_implementation("numpy", code=_exprel_numpy)
    function.implementations.add_implementation("cpp", code=_EXPREL_CPP, name=EXPREL_FUNCTION_NAME)
    function.implementations.add_implementation("cython", code=_EXPREL_CYTHON, name=EXPREL_FUNCTION_NAME)
    return function


_DIVIDE_CPP = """
static inline double nml2lut_divide(const double a, const double b)
{
    return a / b;
}
"""

_DIVIDE_CYTHON = """
cimport cython
@cython.cdivision(True)
cdef inline double nml2lut_divide(double a, double b) noexcept nogil:
    return a / b
"""


def _divide_numpy(a, b):
    with np.errstate(all="ignore"):
        return np.true_divide(a, b)


@functools.cache
def make_divide_function() -> brian2.Function:
    """``nml2lut_divide(a, b)``: a/b with IEEE semantics (0/0 is NaN, 1/0 inf) in every target.

    Used inside the branches of a case expression, which are all computed:
    Cython's Python-style division would raise on the branch not taken.
    """

    @brian2.check_units(a=1, b=1, result=1)
    def pyfunc(a, b):
        return _divide_numpy(a, b)

    function = brian2.Function(pyfunc, arg_units=[1, 1], return_unit=1, arg_types=["any", "any"],
                               return_type="float", stateless=True)  # fmt: skip
    function.implementations.add_implementation("numpy", code=_divide_numpy)
    function.implementations.add_implementation("cpp", code=_DIVIDE_CPP, name="nml2lut_divide")
    function.implementations.add_implementation("cython", code=_DIVIDE_CYTHON, name="nml2lut_divide")
    return function


#: Name of the function made by `make_dt_check_function`.
DT_CHECK_FUNCTION_NAME = "nml2lut_dt_check"

_DT_CHECK_CPP = """
static inline double nml2lut_dt_check(const double dt, const double expected)
{
    // 1 when the group runs with the step the tables were made for, NaN otherwise
    return (dt - expected) * (dt - expected) <= 1e-18 * expected * expected ? 1.0 : NAN;
}
"""

_DT_CHECK_CYTHON = """
from libc.math cimport NAN
cdef inline double nml2lut_dt_check(double dt, double expected) noexcept nogil:
    if (dt - expected) * (dt - expected) <= 1e-18 * expected * expected:
        return 1.0
    return NAN
"""


def _dt_check_numpy(dt, expected):
    return np.where((np.asarray(dt) - expected) ** 2 <= 1e-18 * expected**2, 1.0, np.nan)


@functools.cache
def make_dt_check_function() -> brian2.Function:
    """``nml2lut_dt_check(dt, expected)``: 1.0 if ``dt`` is ``expected`` (s), else NaN.

    Multiplies rates tabulated for one time step, so that a run with another
    step fails loudly (NaN) instead of silently using the wrong update.
    """

    @brian2.check_units(dt=1, expected=1, result=1)
    def pyfunc(dt, expected):
        return _dt_check_numpy(dt, expected)

    function = brian2.Function(pyfunc, arg_units=[1, 1], return_unit=1, arg_types=["any", "any"],
                               return_type="float", stateless=True)  # fmt: skip
    function.implementations.add_implementation("numpy", code=_dt_check_numpy)
    function.implementations.add_implementation("cpp", code=_DT_CHECK_CPP, name=DT_CHECK_FUNCTION_NAME)
    function.implementations.add_implementation("cython", code=_DT_CHECK_CYTHON, name=DT_CHECK_FUNCTION_NAME)
    return function
