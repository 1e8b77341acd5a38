"""units: NeuroML quantity text -> SI, every error path."""

import math

import pytest

from nml2lut.errors import Nml2LutError, UnitError
from nml2lut.units import DIMENSIONS, Dimension, Unit, UnitRegistry, dimension_name, parse_quantity


@pytest.mark.parametrize(
    ("text", "dimension", "si"),
    [
        ("-65mV", "voltage", -0.065),
        ("-0.02V", "voltage", -0.02),
        ("100per_s", "per_time", 100.0),
        ("0.1per_ms", "per_time", 100.0),
        ("10 pS", "conductance", 10e-12),
        ("10pS", "conductance", 10e-12),
        ("1.5 mS_per_cm2", "conductanceDensity", 15.0),
        ("1 uF_per_cm2", "specificCapacitance", 0.01),
        ("6.3degC", "temperature", 279.45),
        ("6.3 degC", "temperature", 279.45),
        ("307.15K", "temperature", 307.15),
        ("5e-5 mM", "concentration", 5e-5),
        ("1 M", "concentration", 1000.0),
        ("2.5E+1ms", "time", 0.025),
        ("1 min", "time", 60.0),
        (".5 um", "length", 5e-7),
        ("3", "none", 3.0),
        ("+2", "none", 2.0),
        ("96485.3 C_per_mol", "charge_per_mole", 96485.3),
        ("8.3144621 J_per_K_per_mol", "idealGasConstantDims", 8.3144621),
    ],
)
def test_quantities_convert_to_si(text, dimension, si):
    quantity = parse_quantity(text, dimension)
    assert math.isclose(quantity.value, si, rel_tol=1e-12)
    assert quantity.dimension == DIMENSIONS[dimension]


@pytest.mark.parametrize(
    ("text", "dimension", "message"),
    [
        ("-65", "voltage", "no unit"),
        ("-65 furlongs", "voltage", "unknown unit 'furlongs'"),
        ("-65mV", "time", "expected a time"),
        ("10mS", "conductanceDensity", "expected a conductanceDensity"),
        ("", "voltage", "not a number"),
        ("mV", "voltage", "not a number"),
        ("1e400 V", "voltage", "not a finite"),
        ("nan mV", "voltage", "not a number"),
        ("inf mV", "voltage", "unknown unit|not a number"),
        ("1 mV mV", "voltage", "not a number"),
        ("1,5mV", "voltage", "not a number"),
        ("__import__('os')", "voltage", "not a number"),
    ],
)
def test_bad_quantities_raise_unit_error(text, dimension, message):
    with pytest.raises(UnitError, match=message) as info:
        parse_quantity(text, dimension, where="test.nml:3 rate")
    assert isinstance(info.value, Nml2LutError) and isinstance(info.value, ValueError)
    assert "test.nml:3 rate" in str(info.value)


def test_non_string_is_refused():
    with pytest.raises(UnitError, match="not a number"):
        parse_quantity(None, "voltage")  # type: ignore[arg-type]


def test_registry_accepts_document_units_and_refuses_conflicts():
    registry = UnitRegistry()
    registry.add_unit(Unit("kV", DIMENSIONS["voltage"], 3))
    assert registry.parse("2kV", "voltage").value == 2000.0
    with pytest.raises(UnitError, match="redefined"):
        registry.add_unit(Unit("mV", DIMENSIONS["voltage"], -6))
    with pytest.raises(UnitError, match="unknown unit"):
        parse_quantity("2kV", "voltage")  # the default registry is unchanged


def test_dimension_arithmetic_and_names():
    voltage, time = DIMENSIONS["voltage"], DIMENSIONS["time"]
    assert dimension_name(voltage / time / voltage) == "per_time"
    assert dimension_name(Dimension(l=5)) == "l^5"
    assert DIMENSIONS["area"].power(0.5) == DIMENSIONS["length"]
    with pytest.raises(UnitError, match="cannot be raised"):
        DIMENSIONS["length"].power(0.5)
