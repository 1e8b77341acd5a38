"""stepper: nml2lut's Brian2 state updater, exponential Euler with tabulated gate steps.

Registered with Brian2 as ``"nml2lut_exponential_euler"`` (`METHOD_NAME`,
``nml2lut.METHOD``) when nml2lut is imported.  It integrates exactly what
Brian2's ``exponential_euler`` integrates, with the same result up to the
tables' accuracy, but finds the gates nml2lut emits::

    dm_Na/dt = (m_inf_Na - m_Na)/m_tau_Na
    m_inf_Na = lut_Na_xxx(v, 0)
    m_tau_Na = (lut_Na_xxx(v, 1))*second

and steps them as ``m_Na = a(v)*m_Na + b(v)`` with ``a = exp(-dt/tau)`` and
``b = inf*(1 - a)`` read from the same lookup function (its step columns,
see `nml2lut.lookup.LookupFunction`, tabulated for the dt of the group's
clock when the code is generated: a group with another dt gets tables for
its own dt).  No ``exp`` per gate and step, and the gate update happens in
the state updater's one pass over the neurons.  Every other differential
equation (the voltage, synapses, gates of 2-D tables, any hand-written one)
is integrated by exponential Euler (Brian2's result, written so that most
steps need neither ``exp`` nor a division, see `_exponential_euler`), which
sees the gates as fixed for the step, exactly as its own coupled update
does: all right-hand sides read the values at the start of the step.

The equations are recognised only in the exact form nml2lut writes; a gate
in another form is simply integrated by exponential Euler.  Nothing from a
model file reaches the generated code: names come from Brian2's own
equations and are checked as identifiers, column indices are integers.
"""

from __future__ import annotations

import ast
import re
from typing import NamedTuple

from brian2 import StateUpdateMethod
from brian2.core.functions import DEFAULT_FUNCTIONS
from brian2.equations.equations import DIFFERENTIAL_EQUATION, PARAMETER, SUBEXPRESSION, Equations, SingleEquation
from brian2.parsing.sympytools import sympy_to_str
from brian2.stateupdaters.base import UnsupportedEquationsException, extract_method_options
from brian2.stateupdaters.exponential_euler import get_conditionally_linear_system

from .lookup import EXPREL_FUNCTION_NAME, LookupFunction, make_exprel_function

__all__ = ["METHOD_NAME", "TabulatedExponentialEuler", "find_gates", "register"]

#: The name the state updater is registered under with Brian2.
METHOD_NAME = "nml2lut_exponential_euler"

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_GATE = re.compile(rf"\(({_NAME}) - ({_NAME})\)/({_NAME})")
_INF = re.compile(rf"({_NAME})\(({_NAME}), (\d+)\)")
_TAU = re.compile(rf"\(({_NAME})\(({_NAME}), (\d+)\)\)\*second")


class GateStep(NamedTuple):
    """One recognised gate: ``state = function(x, a)*state + function(x, b)``."""

    state: str
    function: str
    x: str
    a: int
    b: int

    def code(self) -> str:
        return f"_{self.state} = {self.function}({self.x}, {self.a})*{self.state} + {self.function}({self.x}, {self.b})"


def _match_gate(eq: SingleEquation, equations: Equations, variables: dict) -> GateStep | None:
    if eq.type != DIFFERENTIAL_EQUATION or eq.flags or eq.expr is None:
        return None
    gate = _GATE.fullmatch(eq.expr.code.strip())
    if gate is None or gate.group(2) != eq.varname:
        return None
    inf_name, tau_name = gate.group(1), gate.group(3)
    if not (inf_name in equations and tau_name in equations):
        return None
    inf_eq, tau_eq = equations[inf_name], equations[tau_name]
    if inf_eq.type != SUBEXPRESSION or tau_eq.type != SUBEXPRESSION:
        return None
    inf = _INF.fullmatch(inf_eq.expr.code.strip())
    tau = _TAU.fullmatch(tau_eq.expr.code.strip())
    if inf is None or tau is None or inf.group(1, 2) != tau.group(1, 2):
        return None
    function = variables.get(inf.group(1))
    if not isinstance(function, LookupFunction):
        return None
    columns = function.step_columns(int(inf.group(3)), int(tau.group(3)))
    if columns is None:
        return None
    return GateStep(eq.varname, inf.group(1), inf.group(2), *columns)


def find_gates(equations: Equations, variables: dict | None) -> list[GateStep]:
    """The gates of `equations` that the step columns of an nml2lut lookup function can step.

    Parameters
    ----------
    equations : brian2.Equations
    variables : dict
        What the names of the equations resolve to (as Brian2 passes it to a
        state updater); without it no gate is recognised.
    """
    if variables is None:
        return []
    found = (_match_gate(eq, equations, variables) for eq in equations.ordered)
    return [gate for gate in found if gate is not None]


def _without(equations: Equations, gates: list[GateStep]) -> Equations:
    """`equations` with the gates' differential equations turned into parameters."""
    states = {gate.state for gate in gates}
    kept = [eq for eq in equations.ordered if eq.varname not in states]
    frozen = [
        SingleEquation(PARAMETER, eq.varname, dimensions=eq.dim, var_type=eq.var_type)
        for eq in equations.ordered
        if eq.varname in states
    ]
    return Equations(kept + frozen)


_MAX_PRODUCT = 8  # x**n with 2 <= n <= 8 becomes a product


class _Products(ast.NodeTransformer):
    """Small integer powers as products; a base that is not a name is computed once, before."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.bases: dict[str, str] = {}  # expression text -> temporary name

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        n = node.right
        if not (isinstance(node.op, ast.Pow) and isinstance(n, ast.Constant) and type(n.value) is int):
            return node
        if not 2 <= n.value <= _MAX_PRODUCT:
            return node
        base = node.left
        if any(isinstance(x, ast.Name) and x.id.startswith("_") for x in ast.walk(base)):
            return node  # a temporary of the update may not exist yet where the base would go
        if not isinstance(base, ast.Name):
            text = ast.unparse(base)
            name = self.bases.setdefault(text, f"{self.prefix}{len(self.bases)}")
            base = ast.Name(name, ast.Load())
        product: ast.expr = base
        for _ in range(n.value - 1):
            product = ast.BinOp(product, ast.Mult(), ast.Name(base.id, ast.Load()))
        return product


def _with_products(lines: list[str]) -> list[str]:
    """``m**3`` as ``m*m*m`` in ``name = expression`` lines.

    In Brian2's Cython loop gcc calls ``pow`` for ``m**3`` (measured: half the
    state update time of model b); C++ expands it anyway, numpy multiplies faster.
    """
    products = _Products("_nml2lut_base_")
    out = []
    for line in lines:
        target, _, expression = line.partition(" = ")
        tree = products.visit(ast.parse(expression, mode="eval"))
        out.append(f"{target} = {ast.unparse(tree)}")
    return [f"{name} = {text}" for text, name in products.bases.items()] + out


def _exponential_euler(equations: Equations, variables: dict | None) -> list[str]:
    """Brian2's exponential Euler for `equations`, with ``A`` of ``dx/dt = A*x + B`` computed once.

    Brian2's ``exponential_euler`` writes ``B/A`` as one fraction and ``A``
    again inside ``exp``: in numpy every conductance is computed three times.
    Its ``-B/A + (x + B/A)*exp(A*dt)`` is written here as the same number
    ``x + (A*x + B)*dt*exprel(A*dt)`` (equal up to rounding, and without the
    cancellation as ``A`` goes to 0), with nml2lut's ``exprel``: a short
    series near 0, where the voltage spends most steps, so most steps pay no
    ``exp`` and no division (model b, C++: 0.62 s against 0.71 s for 2,000
    cells and 200 ms).  ``x*exp(A*dt)`` without ``B``, ``x + dt*B`` without ``A``.
    """
    if equations.is_stochastic:
        raise UnsupportedEquationsException("Cannot solve stochastic equations with this state updater.")
    try:
        system = get_conditionally_linear_system(equations, variables)
    except ValueError:
        raise UnsupportedEquationsException(
            "Can only solve conditionally linear systems with this state updater."
        ) from None
    lines = []
    for var, (a, b) in system.items():
        if a == 0:
            lines.append(f"_{var} = {var} + dt*({sympy_to_str(b)})")
            continue
        lines.append(f"_A_{var} = {sympy_to_str(a)}")
        if b == 0:
            lines.append(f"_{var} = {var}*exp(_A_{var}*dt)")
            continue
        lines.append(f"_B_{var} = {sympy_to_str(b)}")
        lines.append(f"_{var} = {var} + dt*(_A_{var}*{var} + _B_{var})*{EXPREL_FUNCTION_NAME}(_A_{var}*dt)")
    return lines + [f"{var} = _{var}" for var in system]


class TabulatedExponentialEuler(StateUpdateMethod):
    """Exponential Euler, with nml2lut gates stepped by their tabulated factors (see the module docstring)."""

    def __call__(self, equations: Equations, variables: dict | None = None, method_options=None) -> str:
        extract_method_options(method_options, {})
        gates = find_gates(equations, variables)
        rest = _without(equations, gates) if gates else equations
        # gates first (they read v at the start of the step), then the rest, then the new gate values
        lines = [gate.code() for gate in gates]
        lines += _with_products(_exponential_euler(rest, variables) if rest.diff_eq_names else [])
        lines += [f"{gate.state} = _{gate.state}" for gate in gates]
        return "\n".join(lines)


def register() -> None:
    """Register the state updater with Brian2 under `METHOD_NAME` (once; later calls do nothing)."""
    if METHOD_NAME not in StateUpdateMethod.stateupdaters:
        StateUpdateMethod.register(METHOD_NAME, TabulatedExponentialEuler())
    # The updates it writes call nml2lut's exprel, which must resolve in any group.
    DEFAULT_FUNCTIONS.setdefault(EXPREL_FUNCTION_NAME, make_exprel_function())
