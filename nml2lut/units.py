"""units: NeuroML quantity text ("-65mV", "6.3degC", "0.1per_ms") <-> SI floats.

Every unit of the NeuroML2 core dimensions is known, in its SI and its
physiological forms.  A quantity with an unknown unit, a missing unit where one
is needed, the wrong dimension, or a value that is not a finite number raises
`UnitError`: a bare number is never guessed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import NamedTuple

from .errors import UnitError

__all__ = [
    "Dimension",
    "DIMENSIONLESS",
    "DIMENSIONS",
    "Unit",
    "UnitRegistry",
    "Quantity",
    "DEFAULT_UNITS",
    "parse_quantity",
    "dimension_named",
    "dimension_name",
]


class Dimension(NamedTuple):
    """Exponents of the seven SI base dimensions (LEMS's m, l, t, i, k, n, j)."""

    m: int = 0
    l: int = 0  # noqa: E741 - LEMS's own name for length
    t: int = 0
    i: int = 0
    k: int = 0
    n: int = 0
    j: int = 0

    def __mul__(self, other: Dimension) -> Dimension:  # type: ignore[override]
        return Dimension(*(a + b for a, b in zip(self, other, strict=True)))

    def __truediv__(self, other: Dimension) -> Dimension:
        return Dimension(*(a - b for a, b in zip(self, other, strict=True)))

    def power(self, exponent: float) -> Dimension:
        """This dimension raised to ``exponent``; non-integer results are an error."""
        raised = [a * exponent for a in self]
        if any(abs(r - round(r)) > 1e-12 for r in raised):
            raise UnitError(f"dimension {dimension_name(self)} cannot be raised to {exponent!r}")
        return Dimension(*(int(round(r)) for r in raised))

    @property
    def is_dimensionless(self) -> bool:
        return not any(self)


DIMENSIONLESS = Dimension()

# The named dimensions of NeuroMLCoreDimensions.xml.
DIMENSIONS: dict[str, Dimension] = {
    "none": DIMENSIONLESS,
    "time": Dimension(t=1),
    "per_time": Dimension(t=-1),
    "voltage": Dimension(m=1, l=2, t=-3, i=-1),
    "per_voltage": Dimension(m=-1, l=-2, t=3, i=1),
    "conductance": Dimension(m=-1, l=-2, t=3, i=2),
    "conductanceDensity": Dimension(m=-1, l=-4, t=3, i=2),
    "capacitance": Dimension(m=-1, l=-2, t=4, i=2),
    "specificCapacitance": Dimension(m=-1, l=-4, t=4, i=2),
    "resistance": Dimension(m=1, l=2, t=-3, i=-2),
    "resistivity": Dimension(m=2, l=2, t=-3, i=-2),
    "charge": Dimension(i=1, t=1),
    "charge_per_mole": Dimension(i=1, t=1, n=-1),
    "current": Dimension(i=1),
    "currentDensity": Dimension(i=1, l=-2),
    "length": Dimension(l=1),
    "area": Dimension(l=2),
    "volume": Dimension(l=3),
    "concentration": Dimension(l=-3, n=1),
    "substance": Dimension(n=1),
    "permeability": Dimension(l=1, t=-1),
    "temperature": Dimension(k=1),
    "idealGasConstantDims": Dimension(m=1, l=2, t=-2, k=-1, n=-1),
    "conductance_per_voltage": Dimension(m=-2, l=-4, t=6, i=3),
    "rho_factor": Dimension(l=-1, n=1, i=-1, t=-1),
}


def dimension_named(name: str) -> Dimension:
    """The dimension called ``name`` in NeuroML (``"voltage"``, ``"per_time"``...)."""
    try:
        return DIMENSIONS[name]
    except KeyError:
        raise UnitError(f"unknown dimension {name!r}") from None


def dimension_name(dim: Dimension) -> str:
    """A readable name of ``dim``: its NeuroML name when it has one, else its exponents."""
    for name, known in DIMENSIONS.items():
        if known == dim:
            return name
    parts = [f"{base}^{exp}" for base, exp in zip(Dimension._fields, dim, strict=True) if exp]
    return "*".join(parts) or "none"


@dataclass(frozen=True)
class Unit:
    """A unit: SI value = number * scale * 10**power + offset."""

    symbol: str
    dimension: Dimension
    power: int = 0
    scale: float = 1.0
    offset: float = 0.0

    def to_si(self, number: float) -> float:
        return number * self.scale * 10.0**self.power + self.offset


class Quantity(NamedTuple):
    """A value in SI units with its dimension."""

    value: float
    dimension: Dimension


def _units(*rows: tuple[str, str, int] | tuple[str, str, int, float]) -> dict[str, Unit]:
    table = {}
    for row in rows:
        symbol, dim, power, *scale = row
        table[symbol] = Unit(symbol, DIMENSIONS[dim], power, scale[0] if scale else 1.0)
    return table


DEFAULT_UNITS: dict[str, Unit] = _units(
    ("s", "time", 0), ("ms", "time", -3), ("us", "time", -6),
    ("min", "time", 0, 60.0), ("hour", "time", 0, 3600.0),
    ("per_s", "per_time", 0), ("Hz", "per_time", 0), ("per_ms", "per_time", 3),
    ("per_min", "per_time", 0, 1 / 60), ("per_hour", "per_time", 0, 1 / 3600),
    ("m", "length", 0), ("cm", "length", -2), ("um", "length", -6),
    ("m2", "area", 0), ("cm2", "area", -4), ("um2", "area", -12),
    ("m3", "volume", 0), ("cm3", "volume", -6), ("litre", "volume", -3), ("um3", "volume", -18),
    ("V", "voltage", 0), ("mV", "voltage", -3),
    ("per_V", "per_voltage", 0), ("per_mV", "per_voltage", 3),
    ("ohm", "resistance", 0), ("kohm", "resistance", 3), ("Mohm", "resistance", 6),
    ("S", "conductance", 0), ("mS", "conductance", -3), ("uS", "conductance", -6),
    ("nS", "conductance", -9), ("pS", "conductance", -12),
    ("S_per_m2", "conductanceDensity", 0), ("mS_per_cm2", "conductanceDensity", 1),
    ("S_per_cm2", "conductanceDensity", 4), ("uS_per_cm2", "conductanceDensity", -2),
    ("F", "capacitance", 0), ("uF", "capacitance", -6), ("nF", "capacitance", -9),
    ("pF", "capacitance", -12),
    ("F_per_m2", "specificCapacitance", 0), ("uF_per_cm2", "specificCapacitance", -2),
    ("ohm_m", "resistivity", 0), ("kohm_cm", "resistivity", 1), ("ohm_cm", "resistivity", -2),
    ("C", "charge", 0), ("e", "charge", 0, 1.602176634e-19),
    ("C_per_mol", "charge_per_mole", 0), ("nA_ms_per_amol", "charge_per_mole", 6),
    ("pC_per_umol", "charge_per_mole", -6),
    ("A", "current", 0), ("uA", "current", -6), ("nA", "current", -9), ("pA", "current", -12),
    ("A_per_m2", "currentDensity", 0), ("uA_per_cm2", "currentDensity", -2),
    ("mA_per_cm2", "currentDensity", 1),
    ("mol_per_m3", "concentration", 0), ("mol_per_cm3", "concentration", 6),
    ("M", "concentration", 3), ("mM", "concentration", 0), ("uM", "concentration", -3),
    ("mol", "substance", 0),
    ("m_per_s", "permeability", 0), ("cm_per_s", "permeability", -2),
    ("um_per_ms", "permeability", -3), ("cm_per_ms", "permeability", 1),
    ("K", "temperature", 0),
    ("J_per_K_per_mol", "idealGasConstantDims", 0),
    ("fJ_per_K_per_umol", "idealGasConstantDims", -9),
    ("S_per_V", "conductance_per_voltage", 0), ("nS_per_mV", "conductance_per_voltage", -6),
    ("mol_per_m_per_A_per_s", "rho_factor", 0), ("mol_per_cm_per_uA_per_ms", "rho_factor", 11),
    ("umol_per_cm_per_nA_per_ms", "rho_factor", 8),
)  # fmt: skip
DEFAULT_UNITS["degC"] = Unit("degC", DIMENSIONS["temperature"], 0, 1.0, 273.15)

# A number, then optional blanks, then an optional unit symbol; nothing else.
_QUANTITY = re.compile(
    r"\s*(?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(?P<unit>[A-Za-z_][A-Za-z0-9_]*)?\s*"
)


class UnitRegistry:
    """The units known while reading one document: the core ones plus any it defines.

    Parameters
    ----------
    extra : dict of str to Unit, optional
        Units declared by the document itself (LEMS ``<Unit>`` elements).
    """

    def __init__(self, extra: dict[str, Unit] | None = None):
        self._units = dict(DEFAULT_UNITS)
        self.dimensions = dict(DIMENSIONS)
        if extra:
            self._units.update(extra)

    def add_unit(self, unit: Unit) -> None:
        """Register a unit declared by a document (a redefinition must agree)."""
        known = self._units.get(unit.symbol)
        if known is not None and known != unit:
            raise UnitError(f"unit {unit.symbol!r} redefined differently from the core unit")
        self._units[unit.symbol] = unit

    def unit(self, symbol: str) -> Unit:
        """The unit with this symbol."""
        try:
            return self._units[symbol]
        except KeyError:
            raise UnitError(f"unknown unit {symbol!r}") from None

    def parse(
        self, text: str, expected: str | Dimension | None = None, *, where: str = ""
    ) -> Quantity:
        """Read ``text`` as a quantity; see `parse_quantity`."""
        context = f" ({where})" if where else ""
        match = _QUANTITY.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise UnitError(f"{text!r} is not a number with an optional unit{context}")
        number = float(match["number"])
        symbol = match["unit"]
        if symbol is None:
            unit = Unit("", DIMENSIONLESS)
        else:
            try:
                unit = self.unit(symbol)
            except UnitError as err:
                raise UnitError(f"{err} in {text!r}{context}") from None
        value = unit.to_si(number)
        if not math.isfinite(value):
            raise UnitError(f"{text!r} is not a finite value in SI units{context}")
        if expected is not None:
            want = dimension_named(expected) if isinstance(expected, str) else expected
            if want != unit.dimension:
                found = "no unit" if symbol is None else f"unit {symbol!r}"
                raise UnitError(
                    f"{text!r} has {found} ({dimension_name(unit.dimension)}), "
                    f"expected a {dimension_name(want)}{context}"
                )
        return Quantity(value, unit.dimension)


_DEFAULT_REGISTRY = UnitRegistry()


def parse_quantity(
    text: str, expected: str | Dimension | None = None, *, where: str = ""
) -> Quantity:
    """Convert NeuroML quantity text to an SI value.

    Parameters
    ----------
    text : str
        A number followed by an optional unit symbol, blanks allowed between
        them: ``"-65mV"``, ``"10 pS"``, ``"-0.02V"``, ``"6.3degC"``.
    expected : str or Dimension, optional
        The dimension the quantity must have (a NeuroML dimension name such as
        ``"voltage"``); a plain number is dimensionless.
    where : str, optional
        Context (file, element, attribute) quoted in error messages.

    Returns
    -------
    Quantity
        The SI value and its dimension.

    Raises
    ------
    UnitError
        Unknown unit, wrong dimension, malformed or non-finite number.

    Examples
    --------
    >>> parse_quantity("-65mV", "voltage").value
    -0.065
    >>> round(parse_quantity("6.3degC", "temperature").value, 2)
    279.45
    """
    return _DEFAULT_REGISTRY.parse(text, expected, where=where)
