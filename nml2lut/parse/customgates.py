"""parse.customgates: gates whose ComponentType has Dynamics of its own -> normal-form `Gate`.

The common case in the wild: a type extending a core gate that keeps its
children (rates, steady state, time course, q10 settings) but redefines how
the gate's state follows from them, e.g. an instantaneous variant of
``gateHHrates`` (``q = inf``).  The type's Dynamics are interpreted:

* ``q`` a DerivedVariable: an instantaneous gate, ``inf`` = that expression;
* ``q`` a StateVariable whose TimeDerivative is linear in ``q``,
  ``dq/dt = a - b*q``: a dynamic gate with ``inf = a/b`` and ``tau = 1/b``
  (checked numerically);
* an ``fcond`` other than ``q^instances`` is kept as an expression of ``q``;
  anything else is refused with `UnsupportedError` naming the construct.
"""

from __future__ import annotations

import numpy as np

from .. import expr
from ..errors import UnsupportedError
from ..model import Gate
from ..units import DIMENSIONLESS
from .componenttypes import Component
from .coretypes import GATE_TYPES

__all__ = ["custom_gate", "base_gate_type"]

_STRUCTURAL = frozenset({*GATE_TYPES, "gate", "baseGate"})
_CHECK_V = np.linspace(-0.1, 0.06, 33)
_CHECK_ENV = {"v": _CHECK_V, "temperature": 306.15, "caConc": 5e-5, "vShift": 0.0}


def base_gate_type(types, kind: str) -> str | None:
    """The core gate type a custom gate type extends (None if none)."""
    for definition in types.chain(kind, stop_at=_STRUCTURAL):
        if definition.extends in _STRUCTURAL:
            return definition.extends
    return None


def _selected(builder, found, element, symbols) -> dict[str, expr.Node]:
    selected = {"q10Settings[*]/q10": symbols["rateScale"]}
    for role, path in (("forwardRate", "forwardRate/r"), ("reverseRate", "reverseRate/r"),
                       ("steadyState", "steadyState/x"), ("timeCourse", "timeCourse/t")):  # fmt: skip
        if found.get(role):
            selected[path] = builder._role(found[role][0], role)
    return selected


def _same(a: expr.Node, b: expr.Node, env: dict) -> bool:
    with np.errstate(all="ignore"):
        x, y = expr.evaluate(a, env), expr.evaluate(b, env)
    return bool(np.allclose(x, y, rtol=1e-9, atol=1e-12, equal_nan=True))


def _linear_in_q(derivative: expr.Node, where: str) -> tuple[expr.Node, expr.Node]:
    """(inf, tau) of ``dq/dt = derivative``, which must be ``a - b*q``."""
    at = {q: expr.substitute(derivative, {"q": expr.Num(q)}) for q in (0.0, 1.0, 0.37)}
    a = at[0.0]
    b = expr.Binary("-", at[0.0], at[1.0])
    linear = expr.Binary("-", a, expr.Binary("*", expr.Num(0.37), b))
    if not _same(at[0.37], linear, _CHECK_ENV):
        raise UnsupportedError("nonlinear gate dynamics", f"{where}: dq/dt is not linear in q")
    return expr.fold_constants(expr.Binary("/", a, b)), expr.fold_constants(expr.Binary("/", expr.Num(1.0), b))


def custom_gate(builder, element, kind: str, gate_id: str, instances: int, where: str) -> Gate:
    """Interpret a gate of a custom type with Dynamics (see the module docstring)."""
    found = builder._children(element, kind)
    symbols = {"rateScale": builder._rate_scale(found)}
    selected = _selected(builder, found, element, symbols)
    for rate, path in (("alpha", "forwardRate/r"), ("beta", "reverseRate/r")):
        if path in selected:
            symbols[rate] = selected[path]
    attributes = {k: v for k, v in element.attrib.items() if isinstance(k, str)}
    resolver = builder.types.resolve_dynamics(
        Component(kind, attributes, where), selected, stop_at=_STRUCTURAL, parameters={"instances": DIMENSIONLESS}
    )
    flat = resolver.flat
    if "q" in flat.derived:
        inf, tau = resolver.value_of("q"), None
    elif "q" in flat.states and "q" in flat.derivatives:
        derivative = flat.derivatives["q"]
        values = {s: resolver.value_of(s) for s in expr.free_symbols(derivative) if s != "q"}
        inf, tau = _linear_in_q(expr.substitute(derivative, values), where)
    else:
        raise UnsupportedError("custom gate without q", f"{where}: type {kind!r} defines no q for the gate")
    fcond = None
    if "fcond" in flat.derived:
        raw = flat.derived["fcond"][0]
        fcond = expr.fold_constants(expr.substitute(
            raw, {s: resolver.value_of(s) for s in expr.free_symbols(raw) if s != "q"}
        ))  # fmt: skip
        q = expr.Sym("q") if tau is not None else inf
        full = resolver.value_of("fcond")  # q (and what it depends on) substituted
        if _same(full, expr.Binary("^", q, expr.Num(float(instances))), {**_CHECK_ENV, "q": 0.37}):
            fcond = None  # the standard q^instances
        elif expr.free_symbols(fcond) - {"q"}:
            raise UnsupportedError("custom fcond", f"{where}: fcond of {kind!r} depends on more than q")
    for name in expr.free_symbols(inf) | (expr.free_symbols(tau) if tau is not None else set()):
        if name not in ("v", "temperature", "alpha", "beta", "caConc", "vShift"):
            raise UnsupportedError(f"requirement {name}", f"{where}: the gate's dynamics need {name!r}")
    return Gate(
        id=gate_id, kind="instantaneous" if tau is None else "dynamic", instances=instances,
        inf=expr.substitute(inf, {k: v for k, v in symbols.items() if k in ("alpha", "beta")}),
        tau=None if tau is None else expr.substitute(tau, {k: v for k, v in symbols.items() if k in ("alpha", "beta")}),
        fcond=fcond, element=where,
    )  # fmt: skip
