"""parse.coretypes: the NeuroML2 core rate, variable, time, q10 and scaling types.

Written out as `ComponentTypeDef`s so that standard and custom types share one
resolution path.  Semantics follow the NeuroML2 core type definitions
(``NeuroML2CoreTypes/Channels.xml``), with one deliberate change: the
ExpLinear forms ``x/(1 - exp(-x))`` are written ``1/exprel(-x)``, which is the
same function but finite at ``x = 0`` (where the core type's own ``Case``
gives the same limit, ``rate``).

Gate and channel types are not listed: their structure (children, products of
gates) is read by `nml2lut.parse.channels`.
"""

from __future__ import annotations

from .. import expr
from ..units import DIMENSIONS
from .componenttypes import ComponentTypeDef

__all__ = ["core_types", "GATE_TYPES", "CHANNEL_TYPES", "BASE_RATE", "BASE_VARIABLE", "BASE_TIME",
           "BASE_Q10", "BASE_SCALING"]  # fmt: skip

BASE_RATE = "baseVoltageDepRate"
BASE_VARIABLE = "baseVoltageDepVariable"
BASE_TIME = "baseVoltageDepTime"
BASE_Q10 = "baseQ10Settings"
BASE_SCALING = "baseConductanceScaling"

GATE_TYPES = frozenset(
    {
        "gateHHrates",
        "gateHHtauInf",
        "gateHHratesTau",
        "gateHHratesInf",
        "gateHHratesTauInf",
        "gateHHInstantaneous",
        "gateFractional",
        "gateKS",
    }
)
CHANNEL_TYPES = frozenset({"ionChannel", "ionChannelHH", "ionChannelPassive", "ionChannelKS", "ionChannelVShift"})

_D = DIMENSIONS


def _define(name, extends=None, *, params=(), requirements=(), exposures=(), constants=(), derived=()):
    definition = ComponentTypeDef(name, extends)
    definition.parameters = {p: _D[d] for p, d in params}
    definition.requirements = {r: _D[d] for r, d in requirements}
    definition.exposures = {e: _D[d] for e, d in exposures}
    for cname, value, dim in constants:
        definition.constants[cname] = value
        definition.constant_dims[cname] = _D[dim]
    for dname, text, dim in derived:
        definition.derived[dname] = (expr.parse(text, allow_internal=True), _D[dim])
    return definition


def _hh_forms(kind: str, base: str, out: str, dim: str) -> list[ComponentTypeDef]:
    linear_arg = "x" if out != "x" else "a"
    return [
        _define(f"HHExp{kind}", base, derived=[(out, "rate * exp((v - midpoint)/scale)", dim)]),
        _define(f"HHSigmoid{kind}", base, derived=[(out, "rate / (1 + exp(0 - (v - midpoint)/scale))", dim)]),
        _define(
            f"HHExpLinear{kind}",
            base,
            derived=[
                (linear_arg, "(v - midpoint) / scale", "none"),
                (out, f"rate / exprel(0 - {linear_arg})", dim),
            ],
        ),
    ]


def core_types() -> dict[str, ComponentTypeDef]:
    """A fresh set of the built-in definitions, keyed by name."""
    ten_kelvin = [("TENDEGREES", 10.0, "temperature")]
    q10_form = "q10Factor^((temperature - experimentalTemp)/TENDEGREES)"
    q10_params = [("q10Factor", "none"), ("experimentalTemp", "temperature")]
    definitions = [
        _define(BASE_RATE, requirements=[("v", "voltage")], exposures=[("r", "per_time")]),
        _define("baseVoltageConcDepRate", BASE_RATE, requirements=[("caConc", "concentration")]),
        _define("baseHHRate", BASE_RATE, params=[("rate", "per_time"), ("midpoint", "voltage"), ("scale", "voltage")]),
        *_hh_forms("Rate", "baseHHRate", "r", "per_time"),
        _define(BASE_VARIABLE, requirements=[("v", "voltage")], exposures=[("x", "none")]),
        _define("baseVoltageConcDepVariable", BASE_VARIABLE, requirements=[("caConc", "concentration")]),
        _define("baseHHVariable", BASE_VARIABLE, params=[("rate", "none"), ("midpoint", "voltage"), ("scale", "voltage")]),
        *_hh_forms("Variable", "baseHHVariable", "x", "none"),
        _define(BASE_TIME, requirements=[("v", "voltage")], exposures=[("t", "time")]),
        _define("baseVoltageConcDepTime", BASE_TIME, requirements=[("caConc", "concentration")]),
        _define("fixedTimeCourse", BASE_TIME, params=[("tau", "time")], derived=[("t", "tau", "time")]),
        _define(BASE_Q10, requirements=[("temperature", "temperature")], exposures=[("q10", "none")]),
        _define("q10Fixed", BASE_Q10, params=[("fixedQ10", "none")], derived=[("q10", "fixedQ10", "none")]),
        _define("q10ExpTemp", BASE_Q10, params=q10_params, constants=ten_kelvin, derived=[("q10", q10_form, "none")]),
        _define(BASE_SCALING, requirements=[("temperature", "temperature")], exposures=[("factor", "none")]),
        _define(
            "q10ConductanceScaling", BASE_SCALING, params=q10_params, constants=ten_kelvin,
            derived=[("factor", q10_form, "none")],
        ),  # fmt: skip
        _define("baseConductanceScalingCaDependent", BASE_SCALING, requirements=[("caConc", "concentration")]),
        _define(
            "vHalfTransition",
            params=[("vHalf", "voltage"), ("z", "none"), ("gamma", "none"), ("tau", "time"), ("tauMin", "time")],
            requirements=[("v", "voltage")], exposures=[("rf", "per_time"), ("rr", "per_time")],
            constants=[("kte", 25.3e-3, "voltage")],
            derived=[
                ("rf0", "exp(z * gamma * (v - vHalf) / kte) / tau", "per_time"),
                ("rr0", "exp(-z * (1 - gamma) * (v - vHalf) / kte) / tau", "per_time"),
                ("rf", "1 / (1/rf0 + tauMin)", "per_time"),
                ("rr", "1 / (1/rr0 + tauMin)", "per_time"),
            ],
        ),  # fmt: skip
    ]
    for definition in definitions:
        definition.where = f"NeuroML2 core type {definition.name!r}"
    from .coreconc import concentration_types  # cell-level types share the registry

    return {**{d.name: d for d in definitions}, **concentration_types()}

