"""tabulate: hand-written Brian2 equations -> the same model with its voltage-dependent pieces looked up in tables.

For Brian2 users without a NeuroML file (the situation lut4brian was made
for).  `tabulate` reads a `brian2.Equations`, folds in the constants known now
(resolved as Brian2 resolves them), finds every piece that depends on one
variable (the membrane voltage) and on those constants only and that costs a
function call or a division, and replaces each by a column of one
interpolating lookup table, so that one index computation serves every
lookup.  Everything else (per-neuron parameters, other state variables, the
form of the gating equations) stays as written, so ``exponential_euler``
still applies.  `lookup_function` turns curves the user tabulated into the
same kind of Brian2 Function, the replacement of lut4brian's ``lutinterpol``.

The user's own Python-side equations are trusted code here: they are read
with Brian2's parser (`str_to_sympy`) and evaluated with `sympy.lambdify`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import numbers
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import brian2
import numpy as np
import sympy
from brian2.core.functions import DEFAULT_CONSTANTS, DEFAULT_FUNCTIONS
from brian2.core.namespace import DEFAULT_UNITS, get_local_namespace
from brian2.equations.equations import DIFFERENTIAL_EQUATION, FLOAT, SUBEXPRESSION, Equations, SingleEquation
from brian2.parsing.expressions import parse_expression_dimensions
from brian2.parsing.sympytools import str_to_sympy, sympy_to_str
from brian2.units.fundamentalunits import DIMENSIONLESS, Quantity, get_dimensions, get_unit

from .errors import ModelError, TableError, UnitError
from .grids import Grid, find_breakpoints
from .lookup import LookupTable, check_function_name, make_lookup_function
from .tables import DEFAULT_RANGE, Tables, build_tables

__all__ = ["tabulate", "Tabulated", "TabulatedPiece", "lookup_function", "TOLERANCE", "ERROR_FLOOR"]

TOLERANCE = 1e-5
"""Default bound on a piece's interpolation error: ten times below `load_channel`'s, because a
hand-written model is often a recurrent network, where any error grows (lut4brian's Wang-Buzsaki
network kept every spike within 0.2 ms of the exact model for 1 s at 1e-5, not at 1e-4)."""
ERROR_FLOOR = 1e-3
"""A curve's error is relative to max(|curve|, ERROR_FLOOR x its largest magnitude on the range)."""
_PROBE = 4001  # points on which a curve's largest magnitude is found
_PENDING = sympy.Function("nml2lut_pending")  # stands for a table until its name (a digest) is known

# Names a NeuronGroup or Synapses defines itself: never constants, whatever the caller's scope holds.
_INTERNAL = frozenset(
    "t dt t_in_timesteps i j N N_pre N_post N_incoming N_outgoing lastspike not_refractory xi".split()
)

# Brian2's stateless functions, by the name of their sympy form, with a numpy implementation.
_FUNCTIONS: dict[str, Callable] = {
    **{n: getattr(np, n) for n in "cos sin tan cosh sinh tanh exp log log10 expm1 log1p sqrt floor sign".split()},
    "acos": np.arccos, "asin": np.arcsin, "atan": np.arctan, "ceiling": np.ceil, "Abs": np.abs, "clip": np.clip,
    "int_": np.trunc, "exprel": lambda x: np.where(x == 0, 1.0, np.expm1(x) / np.where(x == 0, 1.0, x)),
}  # fmt: skip
# Symbols are sympy Booleans too: these are the nodes whose value is a truth value.
_BOOLEAN = (sympy.core.relational.Relational, sympy.logic.boolalg.BooleanFunction, sympy.logic.boolalg.BooleanAtom)
_CHEAP = frozenset({"Abs", "sign", "int_", "floor", "ceiling", "clip"})


@dataclass(frozen=True)
class TabulatedPiece:
    """One column of the table: a piece of the equations, now a lookup.

    Attributes
    ----------
    where : str
        Where it was found: a subexpression's name (``"alpha_m"``) or a
        differential equation (``"dh/dt"``); several places share one column.
    expression : str
        The piece as the equations wrote it (other subexpressions by name).
    whole : bool
        The whole right-hand side of the subexpression (else a term or factor in it).
    function, column : str, int
        The lookup that replaced it: ``function(v, column)``.  Pieces read at
        run time share one table; subexpressions read by nothing else (kept
        for monitors) go to a second table on the same grid.
    unit : str
        The unit the lookup is multiplied by (the table holds SI numbers).
    max_error : float
        Measured maximum interpolation error, relative to
        ``max(|exact|, ERROR_FLOOR * max |exact|)`` over the range.
    at : float
        Value of the variable (SI) where that error occurs.
    """

    where: str
    expression: str
    whole: bool
    function: str
    column: int
    unit: str
    max_error: float
    at: float


@dataclass(frozen=True)
class Tabulated:
    """What `tabulate` returns: the new equations, what the group needs, and what was tabulated.

    Attributes
    ----------
    equations : brian2.Equations
        The model with every tabulated piece replaced by ``function(v, k)*unit``.
    namespace : dict
        The lookup Functions and the constants the equations still use by name:
        pass it as the group's ``namespace``.
    report : tuple of TabulatedPiece
        One entry per column, in the order of `tables`.
    tables : Tables
        All columns on their one grid (values in SI, measured errors).
    variable : str
        The variable the table is indexed by.
    """

    equations: Equations
    namespace: dict
    report: tuple[TabulatedPiece, ...]
    tables: Tables
    variable: str
    _curves: tuple[Callable, ...] = field(repr=False, compare=False, default=())

    @property
    def function_name(self) -> str:
        """The lookup Function the model reads at run time (the first table)."""
        return self.report[0].function

    @property
    def grid(self) -> Grid:
        return self.tables.grid

    @property
    def max_error(self) -> float:
        """The worst measured error of any column."""
        return max(piece.max_error for piece in self.report)

    def curves(self, x, *, exact: bool = False) -> np.ndarray:
        """Every piece at ``x`` (SI floats or a quantity), in report order: shape ``x.shape + (n,)``, SI.

        As the lookup computes them, or with ``exact=True`` as the equations did.
        """
        x = np.asarray(x, dtype=float)
        if exact:
            with np.errstate(all="ignore"):
                return np.stack([np.broadcast_to(c(x), x.shape) for c in self._curves], axis=-1)
        return np.stack([self.tables.interpolate(x, name) for name in self.tables.names], axis=-1)

    def __str__(self) -> str:
        volts = self.equations[self.variable].dim == brian2.volt.dim
        scale, unit = (1e3, "mV") if volts else (1.0, _unit_text(self.equations[self.variable].dim))
        grid = self.grid
        lines = [
            f"{len(self.report)} piece(s) tabulated over {self.variable}: {grid.n} points from "
            f"{grid.v_min * scale:.6g} to {grid.v_max * scale:.6g} {unit} (step {grid.step * scale:.3g} {unit}), "
            f"tolerance {self.tables.tolerance:g}"
        ]
        for p in self.report:
            part = "" if p.whole else "term in "
            lines.append(
                f"  {p.function}({self.variable}, {p.column}): {part}{p.where} = {p.expression} [{p.unit}]; "
                f"max error {p.max_error:.2g} at {self.variable} = {p.at * scale:.5g} {unit}"
            )
        return "\n".join(lines)


# ---------------------------------------------------------------- names and units


def _resolve(identifiers: set[str], namespace: Mapping) -> tuple[dict, dict]:
    """Constants (name -> scalar) and user objects (name -> object), Brian2's defaults first."""
    constants, user = {}, {}
    for name in sorted(identifiers):
        if name in DEFAULT_CONSTANTS:
            constants[name] = DEFAULT_CONSTANTS[name].value
            continue
        if name in DEFAULT_UNITS:
            constants[name] = DEFAULT_UNITS[name]
            continue
        if name in DEFAULT_FUNCTIONS or name not in namespace or name in _INTERNAL or name.startswith("xi_"):
            continue
        value = namespace[name]
        if isinstance(value, (brian2.Function, np.ndarray, np.generic, numbers.Number)):
            user[name] = value
        if isinstance(value, (np.generic, numbers.Number)) or (isinstance(value, np.ndarray) and value.ndim == 0):
            constants[name] = value
    return constants, user


def _unit_text(dim) -> str:
    """Brian2 text for the SI unit of ``dim`` (a named unit when Brian2 has one)."""
    if dim is DIMENSIONLESS:
        return "1"
    unit = get_unit(dim)
    text = repr(unit)
    names = re.findall(r"[A-Za-z_]\w*", text)
    if float(np.asarray(unit)) == 1.0 and all(n in DEFAULT_UNITS for n in names):
        return text
    return repr(dim)  # base units: "metre ** -2 * amp"


def _x_range(bounds, dim, variable: str) -> tuple[float, float]:
    if isinstance(bounds, str) or len(bounds) != 2:
        raise UnitError(f"range must be a pair (low, high), got {bounds!r}")
    values = []
    for bound in bounds:
        if get_dimensions(bound) != dim:
            if not isinstance(bound, Quantity):
                raise UnitError(f"range bound {bound!r} has no unit: {variable!r} is in {_unit_text(dim)}")
            raise UnitError(f"range bound {bound!r} is not in the unit of {variable!r} ({_unit_text(dim)})")
        values.append(float(np.asarray(bound)))
    if not (np.isfinite(values).all() and values[1] > values[0]):
        raise UnitError(f"range {bounds!r} must be finite and increasing")
    return values[0], values[1]


# ---------------------------------------------------------------- finding the pieces


class _Finder:
    """Walks the equations and collects the pieces to tabulate, each once."""

    def __init__(self, eqs: Equations, variable: str, constants: dict):
        self.eqs, self.variable, self.constants = eqs, variable, constants
        self.x = sympy.Symbol(variable, real=True)
        self.inlined: dict[str, sympy.Expr] = {}
        self.vonly: set[str] = set()  # float subexpressions of the variable and constants alone
        for eq in eqs.ordered:
            if eq.type == SUBEXPRESSION:
                self.inlined[eq.varname] = self._substitute(str_to_sympy(eq.expr.code))
        self.vonly = {n for n, e in self.inlined.items() if self.eqs[n].var_type == FLOAT and self._closed(e)}
        self.columns: dict[sympy.Expr, int] = {}
        self.pieces: list[dict] = []
        self.needed: set[str] = set()
        self.n_hot: int | None = None  # columns read at run time come first

    def _substitute(self, expr):
        return expr.xreplace({s: self.inlined[s.name] for s in expr.free_symbols if s.name in self.inlined})

    def _closed(self, expr) -> bool:
        """Depends on nothing but the variable, constants and Brian2's stateless functions."""
        if isinstance(expr, _BOOLEAN):
            return False
        names = {s.name for s in expr.free_symbols}
        allowed = {self.variable} | set(self.constants) | self.vonly
        return names <= allowed and all(type(f).__name__ in _FUNCTIONS for f in expr.atoms(sympy.Function))

    def _costly(self, expr) -> bool:
        for node in sympy.preorder_traversal(expr):
            if isinstance(node, sympy.Function) and type(node).__name__ not in _CHEAP:
                return True
            if isinstance(node, sympy.Pow) and (
                node.exp.has(self.x) or (node.base.has(self.x) and not (node.exp.is_Integer and node.exp > 0))
            ):
                return True
        return False

    def _power(self, expr) -> bool:
        """An integer power (not +-1) of something of the variable: raised at run time, not tabulated.

        ``m_inf**3`` falls three times as steeply as ``m_inf``: it would need a finer
        grid, a larger table and more cache, to save two multiplications.
        """
        return isinstance(expr, sympy.Pow) and expr.exp.is_Integer and abs(expr.exp) > 1 and self._closed(expr.base)

    def _whole(self, expr) -> bool:
        """Of the variable alone, and one piece: neither a power nor a product with a power in it."""
        if not self._closed(expr) or self._power(expr):
            return False
        return not (isinstance(expr, sympy.Mul) and any(self._power(a) for a in expr.args))

    def rewrite(self, expr, where: str, whole: bool = False):
        """``expr`` with its maximal pieces of the variable alone replaced by lookups."""
        if self._power(expr):  # the table holds the base, or its inverse for a negative power
            sign = 1 if expr.exp > 0 else -1
            return self.rewrite(expr.base**sign, where) ** abs(expr.exp)
        if self._whole(expr):
            return self._piece(expr, where, whole)
        if isinstance(expr, (sympy.Add, sympy.Mul)):  # the terms or factors of the variable alone, together
            group = [a for a in expr.args if self._whole(a)]
            rest = [self.rewrite(a, where) for a in expr.args if a not in group]
            if group:
                return expr.func(self._piece(expr.func(*group), where, False), *rest)
            return expr.func(*rest)
        if not expr.args:
            return expr
        return expr.func(*(self.rewrite(a, where) for a in expr.args))

    def _piece(self, expr, where: str, whole: bool):
        exact = self._substitute(expr)
        varying = [a for a in (expr.args if isinstance(expr, (sympy.Add, sympy.Mul)) else (expr,))
                   if self._substitute(a).has(self.x)]  # fmt: skip
        trivial = len(varying) == 1 and isinstance(varying[0], sympy.Symbol)
        if trivial or not exact.has(self.x) or not self._costly(exact):
            self.needed |= {s.name for s in expr.free_symbols if s.name in self.vonly}
            return expr
        if exact not in self.columns:
            self.columns[exact] = len(self.pieces)
            self.pieces.append({"exact": exact, "expression": sympy_to_str(expr), "where": [], "whole": whole,
                                "dim": self._dimensions(expr)})  # fmt: skip
        k = self.columns[exact]
        if where not in self.pieces[k]["where"]:
            self.pieces[k]["where"].append(where)
        unit = self.pieces[k]["dim"]
        factor = 1 if unit is DIMENSIONLESS else str_to_sympy(_unit_text(unit))
        return _PENDING(self.x, sympy.Integer(k)) * factor

    def _dimensions(self, expr):
        names = {s.name for s in expr.free_symbols}
        variables = {**DEFAULT_FUNCTIONS, **DEFAULT_CONSTANTS}
        variables.update({n: self.constants[n] for n in names if n in self.constants})
        variables.update({n: Quantity(1, dim=self.eqs[n].dim) for n in names if n in self.eqs})
        try:
            return get_dimensions(parse_expression_dimensions(sympy_to_str(expr), variables))
        except Exception as err:  # Brian2 raises several types for one problem: bad units
            raise UnitError(f"cannot tabulate {sympy_to_str(expr)!r}: {err}") from err

    def run(self) -> dict[str, sympy.Expr | int]:
        """New right-hand sides of the equations that change: an expression, or the column of a whole one."""
        new: dict[str, sympy.Expr | int] = {}
        for eq in self.eqs.values():  # the text's order: deterministic, unlike ties in `ordered`
            if eq.expr is None or eq.varname in self.vonly:
                continue
            where = f"d{eq.varname}/dt" if eq.type == DIFFERENTIAL_EQUATION else eq.varname
            expr = self.rewrite(str_to_sympy(eq.expr.code), where)
            if expr != str_to_sympy(eq.expr.code):
                new[eq.varname] = expr
        # Subexpressions of the variable alone: first those the model reads at run time, then
        # the others (for monitors and the user), whose columns go to a second table so that
        # the first stays small in the cache.
        done: set[str] = set()
        ordered = [name for name in self.eqs if name in self.vonly]
        while pending := sorted(self.needed - done) or [n for n in ordered if n not in done]:
            if not self.needed - done and self.n_hot is None:
                self.n_hot = len(self.pieces)
            name = pending[0]
            done.add(name)
            expr = str_to_sympy(self.eqs[name].expr.code)
            rewritten = self.rewrite(expr, name, whole=True)
            if self._substitute(expr) in self.columns:  # the whole right-hand side
                new[name] = k = self.columns[self._substitute(expr)]
                self.pieces[k].update(expression=self.eqs[name].expr.code, whole=True)
            elif rewritten != expr:  # a power of a piece
                new[name] = rewritten
        if self.n_hot is None:
            self.n_hot = len(self.pieces)
        return new


# ---------------------------------------------------------------- tables


def _numeric(exact: sympy.Expr, x: sympy.Symbol, constants: dict) -> Callable:
    symbols = sorted((s for s in exact.free_symbols if s != x), key=lambda s: s.name)
    values = [float(np.asarray(constants[s.name])) for s in symbols]
    # Every function as an opaque call to our numpy version: sympy would otherwise print
    # Brian2's exprel as (exp(x) - 1)/x, which cancels catastrophically near 0.
    opaque = exact.replace(
        lambda node: isinstance(node, sympy.Function) and type(node).__name__ in _FUNCTIONS,
        lambda node: sympy.Function(type(node).__name__)(*node.args),
    )
    modules = [_FUNCTIONS, "numpy"]
    function = sympy.lambdify([x, *symbols], opaque, modules=modules, dummify=True)

    def curve(v: np.ndarray) -> np.ndarray:
        return function(v, *values)

    return curve


def _switches(exact: sympy.Expr, x: sympy.Symbol, constants: dict) -> list[Callable]:
    """Where a piece may jump or bend: its comparisons, and the arguments of abs, sign and clip."""
    conditions = list(exact.atoms(sympy.core.relational.Relational))
    for node in sympy.preorder_traversal(exact):
        name = type(node).__name__
        if name in ("Abs", "sign"):
            conditions.append(node.args[0] > 0)
        elif name == "clip":
            conditions += [node.args[0] > node.args[1], node.args[0] < node.args[2]]
    return [_numeric(c, x, constants) for c in conditions if c.has(x)]


def _build(pieces, x, constants, x_range, tolerance, n_points, volts: bool) -> tuple[Tables, list[Callable]]:
    """The table, in SI, and the exact curves.

    `build_tables` and `find_breakpoints` work in volts (a first step of
    0.5 mV, a scan at 0.01 mV): another variable is scaled so that its range
    spans the default voltage range, and the grid is scaled back afterwards.
    """
    curves = [_numeric(p["exact"], x, constants) for p in pieces]
    switches = [s for p in pieces for s in _switches(p["exact"], x, constants)]
    a = 1.0 if volts else (DEFAULT_RANGE[1] - DEFAULT_RANGE[0]) / (x_range[1] - x_range[0])
    if a != 1.0:
        curves_a = [lambda u, c=c: c(u / a) for c in curves]
        switches = [lambda u, s=s: s(u / a) for s in switches]
    u_range = (x_range[0] * a, x_range[1] * a)
    note = "" if a == 1.0 else f" (a position u in mV here is {x} = u/{a * 1e3:g} in SI units)"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tables = _build_scaled(pieces, curves_a if a != 1.0 else curves, u_range, tolerance, n_points,
                               find_breakpoints(switches, u_range), note)  # fmt: skip
    for w in caught:
        warnings.warn(w.category(f"{w.message}{note}"), stacklevel=3)
    if a != 1.0:
        grid = tables.grid
        tables = dataclasses.replace(
            tables, grid=Grid(grid.v_min / a, grid.v_max / a, grid.n),
            errors={k: dataclasses.replace(e, at=e.at / a) for k, e in tables.errors.items()},
            breakpoints=tuple(b / a for b in tables.breakpoints),
        )  # fmt: skip
    return tables, curves


def _build_scaled(pieces, curves, x_range, tolerance, n_points, breakpoints, note) -> Tables:
    """Tables of ``curves``, each divided by ERROR_FLOOR x its peak for the error measure, then rescaled."""
    probe = np.linspace(*x_range, _PROBE)
    scales = []
    for curve in curves:
        with np.errstate(all="ignore"):
            y = np.abs(np.broadcast_to(np.asarray(curve(probe), dtype=float), probe.shape))
        peak = float(np.max(y[np.isfinite(y)], initial=0.0))
        scales.append(ERROR_FLOOR * peak if peak > 0 else 1.0)
    names = [f"column {k} ({', '.join(p['where'])})" for k, p in enumerate(pieces)]
    try:
        tables = build_tables(
            {n: lambda u, c=c, s=s: c(u) / s for n, c, s in zip(names, curves, scales, strict=True)}, v_range=x_range,
            tolerance=tolerance, n_points=n_points, breakpoints=breakpoints, label="tabulate: ",
        )  # fmt: skip
    except TableError as err:
        raise TableError(f"{err}{note} (narrow the range, or leave this piece out)") from err
    scale = np.array(scales)
    return dataclasses.replace(tables, values=tables.values * scale, slopes=tables.slopes * scale)


def _digest(*arrays, extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for array in arrays:
        digest.update(np.ascontiguousarray(array, dtype=float).tobytes())
    return digest.hexdigest()[:12]


# ---------------------------------------------------------------- the public functions


def tabulate(
    equations,
    *,
    variable: str = "v",
    range=(-100 * brian2.mV, 60 * brian2.mV),  # noqa: A002 (the issue's name)
    tolerance: float = TOLERANCE,
    namespace: Mapping | None = None,
    n_points: int | None = None,
    level: int = 0,
) -> Tabulated:
    """Replace every piece of ``equations`` that depends on ``variable`` alone by a table lookup.

    A piece is a maximal part of a right-hand side (a subexpression, or a
    term or factor of a sum or product, other subexpressions inlined) that
    depends only on ``variable`` and on constants, and costs a function call,
    a division by or a non-integer power of an expression of ``variable``:
    rate functions, steady states, time constants, ``1/tau``.  Constants
    (numbers and quantities in ``namespace``, or else in the caller's scope,
    resolved as Brian2 resolves them, units and ``pi`` included) are folded
    into the tables; per-neuron parameters and other state variables stay as
    they are, and so does the form of every equation (``dm/dt`` stays linear
    in ``m``).  All pieces share one grid: one index computation per step.

    Parameters
    ----------
    equations : brian2.Equations or str
    variable : str
        A state variable or parameter (float) of the equations.
    range : (Quantity, Quantity)
        The table's range, in the unit of ``variable``; outside it a lookup
        holds the edge value.
    tolerance : float
        Bound on each piece's maximum interpolation error, relative to
        ``max(|piece|, ERROR_FLOOR * max |piece|)`` on the range (default `TOLERANCE`).
    namespace : mapping, optional
        Where external names are looked up (default: the caller's locals and globals).
    n_points : int, optional
        A fixed grid size instead of one refined for ``tolerance``.
    level : int
        How many frames above the caller to take the namespace from.

    Returns
    -------
    Tabulated
        ``.equations``, ``.namespace`` (pass it to the group), ``.report``.

    Raises
    ------
    ModelError
        ``variable`` is not in the equations, or nothing can be tabulated.
    UnitError
        The range has no or the wrong unit.
    TableError
        A piece is NaN or infinite somewhere in the range (not a removable singularity).

    Examples
    --------
    >>> from brian2 import NeuronGroup, ms, mV
    >>> tab = tabulate('''dn/dt = (n_inf - n)/tau_n : 1
    ...                   n_inf = 1/(1 + exp(-(v + 30*mV)/(8*mV))) : 1
    ...                   tau_n = 1*ms + 4*ms*exp(-((v + 40*mV)/(20*mV))**2) : second
    ...                   v : volt''')
    >>> [(p.where, p.expression) for p in tab.report]  # doctest: +NORMALIZE_WHITESPACE
    [('dn/dt', '1/tau_n'), ('n_inf', '1/(1 + exp(-(v + 30*mV)/(8*mV)))'),
     ('tau_n', '1*ms + 4*ms*exp(-((v + 40*mV)/(20*mV))**2)')]
    >>> print(tab.equations["n"].expr.code.replace(tab.function_name, "lut"))
    hertz*(-n + n_inf)*lut(v, 0)
    >>> group = NeuronGroup(10, tab.equations, namespace=tab.namespace, method="exponential_euler")
    """
    eqs = equations if isinstance(equations, Equations) else Equations(_check_text(equations))
    if variable not in eqs or eqs[variable].type == SUBEXPRESSION or eqs[variable].var_type != FLOAT:
        raise ModelError(
            f"variable {variable!r} must be a float state variable or parameter of the equations "
            f"(they define {', '.join(sorted(eqs.names)) or 'nothing'})"
        )
    x_dim = eqs[variable].dim
    x_range = _x_range(range, x_dim, variable)
    scope = dict(namespace) if namespace is not None else get_local_namespace(level + 1)
    externals = {n for eq in eqs.values() for n in eq.identifiers} - set(eqs.names)
    constants, user = _resolve(externals, scope)
    finder = _Finder(eqs, variable, constants)
    new = finder.run()
    if not finder.pieces:
        unresolved = sorted(externals - set(constants) - set(user) - set(DEFAULT_FUNCTIONS) - _INTERNAL)
        hint = f"; names not resolved (treated as per-neuron): {', '.join(unresolved)}" if unresolved else ""
        raise ModelError(
            f"nothing to tabulate: no part of the equations depends on {variable!r} and constants alone "
            f"and costs a function call or a division{hint}"
        )
    volts = x_dim == brian2.volt.dim
    tables, curves = _build(finder.pieces, finder.x, constants, x_range, tolerance, n_points, volts)
    functions, where = _functions(tables, finder.n_hot, variable, get_unit(x_dim))
    result_eqs = Equations([_replaced(eq, new.get(eq.varname), finder, where) for eq in eqs.values()])
    used = {n for eq in result_eqs.values() for n in eq.identifiers}
    report = tuple(
        TabulatedPiece(", ".join(p["where"]), p["expression"], p["whole"], *where[k], _unit_text(p["dim"]),
                       tables.errors[n].max_error, tables.errors[n].at)
        for k, (p, n) in enumerate(zip(finder.pieces, tables.names, strict=True))
    )  # fmt: skip
    space = {n: v for n, v in user.items() if n in used}
    return Tabulated(result_eqs, {**space, **functions}, report, tables, variable, tuple(curves))


def _functions(tables: Tables, n_hot: int, variable: str, unit) -> tuple[dict, list[tuple[str, int]]]:
    """The lookup Functions (run-time columns, then the others) and where each column went."""
    functions, where = {}, []
    for part in (slice(0, n_hot), slice(n_hot, None)):
        values, slopes = tables.values[:, part], tables.slopes[:, part]
        if values.shape[1] == 0:
            continue
        grid = tables.grid
        name = f"lut_{re.sub('_+', '_', variable)}_" + _digest(values, slopes, [grid.v_min, grid.v_max])
        table = LookupTable(values, grid.v_min, grid.v_max, slopes)
        functions[name] = make_lookup_function(table, name, arg_unit=unit)
        where += [(name, k) for k in range(values.shape[1])]
    return functions, where


def _replaced(eq: SingleEquation, rhs, finder: _Finder, where: list[tuple[str, int]]) -> SingleEquation:
    if rhs is None:
        return eq
    if isinstance(rhs, int):
        unit = _unit_text(finder.pieces[rhs]["dim"])
        name, k = where[rhs]
        text = f"{name}({finder.variable}, {k})" + ("" if unit == "1" else f"*{unit}")
    else:
        lookup = rhs.replace(
            lambda node: getattr(node, "func", None) == _PENDING,
            lambda node: sympy.Function(where[int(node.args[1])][0])(node.args[0], where[int(node.args[1])][1]),
        )
        text = sympy_to_str(lookup)
    return SingleEquation(eq.type, eq.varname, eq.dim, eq.var_type, brian2.Expression(text), eq.flags)


def _check_text(equations) -> str:
    if not isinstance(equations, str):
        raise ModelError(f"equations must be brian2.Equations or their text, got {type(equations).__name__}")
    return equations


_WRAPPERS = {
    "cpp": "\nstatic inline double {name}(const double x)\n{{\n    return {inner}(x, 0);\n}}\n",
    "cython": "\ncdef inline double {name}(const double x) noexcept:\n    return {inner}(x, 0)\n",
}


def lookup_function(values, x_min, x_max, *, name: str | None = None) -> brian2.Function:
    """A Brian2 Function interpolating curves sampled on a uniform grid (lut4brian's ``lutinterpol``, safely).

    Parameters
    ----------
    values : array_like or Quantity, shape (n_points,) or (n_points, n_curves)
        ``values[j]`` (or ``values[j, k]``, curve ``k``) at
        ``x_j = x_min + j*(x_max - x_min)/(n_points - 1)``.  lut4brian's
        ``tbl`` (one row per curve) is ``tbl.T`` here.  With a unit, the
        function returns that unit.
    x_min, x_max : Quantity or float
        The grid's ends; the function's argument has their unit (dimensionless
        for plain numbers).
    name : str, optional
        The function's name in equations and generated code (default
        ``lut_<digest of the table>``); put it in the group's namespace under it.

    Returns
    -------
    brian2.Function
        ``name(x)`` for one curve, ``name(x, k)`` for several (``k`` an
        integer literal), its name in ``.name``; numpy, Cython and
        ``cpp_standalone`` implementations, no module state and no files.
        Outside ``[x_min, x_max]`` the edge value; a NaN ``x`` gives NaN.

    Raises
    ------
    UnitError
        ``x_min`` and ``x_max`` differ in unit.
    TableError
        Not finite, wrong shape, empty range or an invalid name.

    Examples
    --------
    >>> import numpy as np
    >>> from brian2 import mV, ms
    >>> v = np.linspace(-100, 60, 161)
    >>> tau = lookup_function((1 + 4*np.exp(-((v + 40)/20)**2))*ms, -100*mV, 60*mV, name="tau_lut")
    >>> print(tau(-40*mV))
    5. ms
    """
    dim = get_dimensions(x_min)
    if get_dimensions(x_max) != dim:
        raise UnitError(f"x_min {x_min!r} and x_max {x_max!r} must have the same unit")
    value_dim = get_dimensions(values)
    array = np.asarray(values, dtype=float)
    one = array.ndim == 1
    table = LookupTable(array[:, None] if one else array, float(np.asarray(x_min)), float(np.asarray(x_max)))
    if name is None:
        name = "lut_" + _digest(table.values, [table.x_min, table.x_max], extra=f"{dim!r}|{value_dim!r}|{one}")
    inner = make_lookup_function(table, f"{check_function_name(name)}_table" if one else name, arg_unit=get_unit(dim))
    return _with_units(inner, name, get_unit(dim), get_unit(value_dim), one)


def _with_units(inner: brian2.Function, name: str, arg_unit, value_unit, one: bool) -> brian2.Function:
    lookup = inner.implementations["numpy"].get_code(None)
    inner_name = inner.implementations["cpp"].name
    if one:

        def numpy_lookup(x):
            return lookup(x, 0)

        @brian2.check_units(x=arg_unit, result=value_unit)
        def pyfunc(x):
            return Quantity(lookup(np.asarray(x), 0), dim=value_unit.dim)

    else:
        numpy_lookup = lookup

        @brian2.check_units(x=arg_unit, k=1, result=value_unit)
        def pyfunc(x, k):
            return Quantity(lookup(np.asarray(x), k), dim=value_unit.dim)

    pyfunc.__name__ = name
    function = brian2.Function(
        pyfunc, arg_units=[arg_unit] if one else [arg_unit, 1], arg_types=["float"] if one else ["float", "integer"],
        return_unit=value_unit, return_type="float", stateless=True,
    )  # fmt: skip
    function.implementations.add_implementation("numpy", code=numpy_lookup)
    for target in ("cpp", "cython"):
        implementation = inner.implementations[target]
        code = implementation.get_code(None)
        if one:
            code += _WRAPPERS[target].format(name=name, inner=inner_name)
        function.implementations.add_implementation(
            target, code=code, namespace=implementation.get_namespace(None), name=name
        )
    function.name = name  # what the equations call it
    return function
