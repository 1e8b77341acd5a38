"""parse.kinetic: ``gateKS`` kinetic schemes -> a kinetic `Gate` (states and transition rates).

Semantics of the NeuroML2 core types (``Channels.xml``), followed even where
they surprise: a ``gateKS`` computes a ``rateScale`` from its q10 settings
but its kinetic scheme uses the transitions' rates unscaled, and an
``ionChannelKS`` declares conductance scaling but its open fraction ignores
it.  nml2lut does the same and warns when a file has either.
"""

from __future__ import annotations

import warnings

from .. import expr
from ..errors import ModelError, UnsupportedError
from ..model import Gate, KineticState, Transition
from .xmlread import local_name

__all__ = ["kinetic_gate", "IgnoredByCoreTypesWarning"]

_STATES = {"closedState": 0.0, "openState": 1.0}
_SKIPPED = {"notes", "annotation"}


class IgnoredByCoreTypesWarning(UserWarning):
    """An element the NeuroML2 core types declare but do not use (q10 of a gateKS...)."""


def _state(builder, child, tag: str, where: str) -> KineticState:
    ident = child.get("id")
    if not ident:
        raise ModelError(f"{where}: <{tag}> without an id")
    if tag in _STATES:
        return KineticState(ident, _STATES[tag])
    text = child.get("relativeConductance")
    if text is None:
        raise ModelError(f"{where}: <KSState id={ident!r}> without relativeConductance")
    return KineticState(ident, builder.library.units.parse(text, "none", where=f"{where} relativeConductance").value)


def _rate_child(builder, child, where: str) -> expr.Node:
    rates = [c for c in child if local_name(c) == "rate"]
    if len(rates) != 1:
        raise ModelError(f"{where}: a {local_name(child)} needs exactly one <rate>")
    return builder._role(rates[0], "forwardRate")


def _transition(builder, child, tag: str, where: str, index: int) -> Transition:
    known = tag in ("forwardTransition", "reverseTransition", "tauInfTransition", "vHalfTransition")
    if not (known or builder.types.is_a(tag, "KSTransition")):
        raise UnsupportedError(tag, f"{where}: unknown transition type {tag!r}")
    source, target = child.get("from"), child.get("to")
    if not source or not target:
        raise ModelError(f"{where}: <{tag}> needs from= and to=")
    ident = child.get("id") or f"{source}_{target}"
    zero = expr.Num(0.0)
    if tag == "forwardTransition":
        rf, rr = _rate_child(builder, child, where), zero
    elif tag == "reverseTransition":
        rf, rr = zero, _rate_child(builder, child, where)
    elif tag == "tauInfTransition":
        found = builder._children(child, tag)
        inf = builder._role(builder._one(found, "steadyState", child, tag, True), "steadyState")
        tau = builder._role(builder._one(found, "timeCourse", child, tag, True), "timeCourse")
        rf = expr.Binary("/", inf, tau)
        rr = expr.Binary("/", expr.Binary("-", expr.Num(1.0), inf), tau)
    else:  # vHalfTransition and custom transition types: rf and rr from the type's Dynamics
        rf = builder._component(child, "rf", "per_time")
        rr = builder._component(child, "rr", "per_time")
    return Transition(ident, source, target, expr.fold_constants(rf), expr.fold_constants(rr))


def kinetic_gate(builder, element, gate_id: str, instances: int, where: str) -> Gate:
    """Read a ``gateKS``: its states and transitions (q10 settings warned about and ignored)."""
    states, transitions = [], []
    for child in element:
        tag = local_name(child)
        child_where = f"{builder.path}:{child.sourceline}"
        # Transitions and states are named by their element; a generic element names its type.
        kind = child.get("type", tag) if tag in ("Component", "KSState", "KSTransition") else tag
        if not tag or tag in _SKIPPED:
            continue
        if tag == "q10Settings":
            warnings.warn(
                f"{child_where}: q10Settings of gateKS {gate_id!r} are ignored: in the NeuroML2 core types a "
                "gateKS's rateScale does not scale its transitions",
                IgnoredByCoreTypesWarning,
                stacklevel=4,
            )
        elif kind in _STATES or kind == "KSState":
            states.append(_state(builder, child, kind, child_where))
        else:
            transitions.append(_transition(builder, child, kind, child_where, len(transitions)))
    ids = [s.id for s in states]
    if len(set(ids)) != len(ids):
        raise ModelError(f"{where}: duplicate state ids in gateKS {gate_id!r}")
    if len(states) < 2 or not transitions:
        raise ModelError(f"{where}: a gateKS needs at least two states and one transition")
    for t in transitions:
        for end in (t.source, t.target):
            if end not in ids:
                raise ModelError(f"{where}: transition {t.id!r} refers to unknown state {end!r}")
    if len({t.id for t in transitions}) != len(transitions):
        raise ModelError(f"{where}: duplicate transition ids in gateKS {gate_id!r}")
    return Gate(id=gate_id, kind="kinetic", instances=instances, states=tuple(states),
                transitions=tuple(transitions), element=where)  # fmt: skip
