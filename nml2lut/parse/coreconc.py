"""parse.coreconc: the NeuroML2 core concentration-model types as `ComponentTypeDef`s.

Written in the same form as a custom ``<ComponentType>`` read from a file, so a
core pool and a custom one (``extends="concentrationModel"``) are interpreted
by one path (`nml2lut.parse.cells`).  Semantics follow the core definitions in
``NeuroML2CoreTypes/Cells.xml``: the pool's ``concentration`` is a state with a
time derivative driven by the calcium current ``iCa`` (inward positive), it
starts at the species' ``initialConcentration`` and is held at zero or above.
"""

from __future__ import annotations

from .. import expr
from ..units import DIMENSIONS
from .componenttypes import ComponentTypeDef

__all__ = ["concentration_types", "BASE_CONCENTRATION_MODEL"]

BASE_CONCENTRATION_MODEL = "concentrationModel"

_D = DIMENSIONS


def _parse(text: str) -> expr.Node:
    return expr.parse(text, allow_internal=True)


def _pool(name: str, *, params, constants=(), derived=(), derivative: str | None) -> ComponentTypeDef:
    definition = ComponentTypeDef(name, BASE_CONCENTRATION_MODEL if name != BASE_CONCENTRATION_MODEL else None)
    definition.parameters = {p: _D[d] for p, d in params}
    for cname, value, dim in constants:
        definition.constants[cname] = value
        definition.constant_dims[cname] = _D[dim]
    for dname, text, dim in derived:
        definition.derived[dname] = (_parse(text), _D[dim])
    if name == BASE_CONCENTRATION_MODEL:
        definition.requirements = {
            "surfaceArea": _D["area"],
            "initialConcentration": _D["concentration"],
            "initialExtConcentration": _D["concentration"],
        }
        definition.exposures = {"concentration": _D["concentration"], "extConcentration": _D["concentration"]}
        definition.states = {"concentration": _D["concentration"], "extConcentration": _D["concentration"]}
        definition.on_start = {
            "concentration": _parse("initialConcentration"),
            "extConcentration": _parse("initialExtConcentration"),
        }
    else:
        definition.requirements = {"iCa": _D["current"]}
        definition.on_conditions = [(_parse("concentration .lt. 0"), {"concentration": _parse("0")})]
    if derivative is not None:
        definition.derivatives = {"concentration": _parse(derivative)}
    definition.where = f"NeuroML2 core type {name!r}"
    return definition


def concentration_types() -> dict[str, ComponentTypeDef]:
    """A fresh set of the core concentration-model definitions, keyed by name."""
    definitions = [
        _pool(BASE_CONCENTRATION_MODEL, params=(), derivative=None),
        _pool(
            "decayingPoolConcentrationModel",
            params=[("restingConc", "concentration"), ("decayConstant", "time"), ("shellThickness", "length")],
            constants=[("Faraday", 96485.3, "charge_per_mole"), ("AREA_SCALE", 1.0, "area"),
                       ("LENGTH_SCALE", 1.0, "length")],
            derived=[
                ("effectiveRadius", "LENGTH_SCALE * sqrt(surfaceArea/(AREA_SCALE * (4 * 3.14159)))", "length"),
                ("innerRadius", "effectiveRadius - shellThickness", "length"),
                ("shellVolume", "(4 * (effectiveRadius * effectiveRadius * effectiveRadius) * 3.14159 / 3)"
                                " - (4 * (innerRadius * innerRadius * innerRadius) * 3.14159 / 3)", "volume"),
            ],
            derivative="iCa / (2 * Faraday * shellVolume) - ((concentration - restingConc) / decayConstant)",
        ),  # fmt: skip
        _pool(
            "fixedFactorConcentrationModel",
            params=[("restingConc", "concentration"), ("decayConstant", "time"), ("rho", "rho_factor")],
            derivative="(iCa/surfaceArea) * rho - ((concentration - restingConc) / decayConstant)",
        ),
        _pool(
            "fixedFactorConcentrationModelTraub",
            params=[("restingConc", "concentration"), ("beta", "per_time"), ("phi", "rho_factor")],
            derivative="(iCa/surfaceArea) * 1e-9 * phi - ((concentration - restingConc) * beta)",
        ),
    ]
    return {d.name: d for d in definitions}
