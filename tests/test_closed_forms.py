"""Self-tests of the closed-form oracle and of the example channel files it describes.

The oracle (`closed_forms`) is checked against textbook values worked out by
hand, for numerical sanity over the voltage range, and for coverage: every
channel and gate of every file in ``example_channels/`` has a closed form. The
files themselves are checked to be well-formed and valid against the NeuroML 2
schema bundled with libNeuroML (no network needed).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from tests.closed_forms import CHANNELS, CLOSED_FORMS, CONDUCTANCE_SCALING, exprel, hh_alpha_m, hh_alpha_n

EXAMPLES = Path(__file__).resolve().parents[1] / "example_channels"
NML_NS = "{http://www.neuroml.org/schema/neuroml2}"
T_6_3 = 273.15 + 6.3
MV = 1e-3
MS = 1e-3

ALL_GATES = [
    (filename, channel, gate)
    for filename, channels in CLOSED_FORMS.items()
    for channel, gates in channels.items()
    for gate in gates
]


def gate_at(filename: str, channel: str, gate: str, v_mv: float, celsius: float) -> dict[str, float]:
    out = CLOSED_FORMS[filename][channel][gate](np.array([v_mv * MV]), 273.15 + celsius)
    return {key: float(value[0]) for key, value in out.items()}


# --- textbook values -------------------------------------------------------


def test_hh_rates_at_textbook_points():
    # alpha_n(-55 mV) = 0.01 * 10 / 1 at the removable singularity: exactly 0.1 /ms.
    assert hh_alpha_n(np.array([-55.0]))[0] == pytest.approx(0.1, rel=1e-14)
    # alpha_m(-40 mV) = 0.1 * 10 / 1: exactly 1 /ms.
    assert hh_alpha_m(np.array([-40.0]))[0] == pytest.approx(1.0, rel=1e-14)


def test_hh_steady_states_at_rest():
    # At rest (-65 mV): alpha_m = 2.5/(e^2.5 - 1) = 0.22356, beta_m = 4
    # alpha_h = 0.07, beta_h = 1/(e^3 + 1) = 0.047426
    # alpha_n = 0.1/(e - 1) = 0.058198, beta_n = 0.125
    m = gate_at("hh_na.channel.nml", "hh_na", "m", -65.0, 6.3)
    h = gate_at("hh_na.channel.nml", "hh_na", "h", -65.0, 6.3)
    n = gate_at("hh_k.channel.nml", "hh_k", "n", -65.0, 6.3)
    assert m["inf"] == pytest.approx(0.0529, abs=5e-5)
    assert h["inf"] == pytest.approx(0.5961, abs=5e-5)
    assert n["inf"] == pytest.approx(0.3177, abs=5e-5)
    # tau_n = 1/(0.058198 + 0.125) ms = 5.4586 ms; tau_m = 1/(0.22356 + 4) ms = 0.23677 ms.
    assert n["tau"] == pytest.approx(5.4586 * MS, rel=1e-4)
    assert m["tau"] == pytest.approx(0.23677 * MS, rel=1e-4)


def test_hh_q10_divides_tau_only():
    cold = gate_at("hh_k.channel.nml", "hh_k", "n", -50.0, 6.3)
    warm = gate_at("hh_k.channel.nml", "hh_k", "n", -50.0, 16.3)
    assert warm["inf"] == cold["inf"]
    assert warm["tau"] == pytest.approx(cold["tau"] / 3.0, rel=1e-14)


def test_wang_buzsaki_values():
    # m_inf(-35 mV): alpha_m = 1 (singular point), beta_m = 4 e^(-25/18); 1/(1 + 0.997407).
    m = gate_at("wb_na.channel.nml", "wb_na", "m", -35.0, 36.0)
    assert m == {"inf": pytest.approx(0.500649, abs=1e-6)}
    # tau_h(-58 mV) = 1/(5 (0.07 + 1/(e^3 + 1))) ms = 1/(5 * 0.117426) ms = 1.703202 ms,
    # at any temperature (phi = 5 is fixed).
    for celsius in (6.3, 36.0):
        h = gate_at("wb_na.channel.nml", "wb_na", "h", -58.0, celsius)
        assert h["tau"] == pytest.approx(1.703202 * MS, rel=1e-6)
    # n at its singular point -34 mV: alpha_n = 0.1, beta_n = 0.125 e^(-1/8).
    n = gate_at("wb_k.channel.nml", "wb_k", "n", -34.0, 36.0)
    beta = 0.125 * math.exp(-0.125)
    assert n["inf"] == pytest.approx(0.1 / (0.1 + beta), rel=1e-12)
    assert n["tau"] == pytest.approx(MS / (5 * (0.1 + beta)), rel=1e-12)


def test_traub_miles_values_and_floor():
    # x = (15 - V + VT)/5 = 0 at V = -48 mV: alpha_n = 0.032 * 5 = 0.16 /ms; beta_n = 0.5 e^(-5/40).
    n = gate_at("custom_kdr.channel.nml", "custom_kdr", "n", -48.0, 36.0)
    beta = 0.5 * math.exp(-0.125)
    assert n["inf"] == pytest.approx(0.16 / (0.16 + beta), rel=1e-12)
    # At +40 mV 1/(alpha + beta) is about 0.35 ms, so the floor (0.5 ms, q10 3 from 36 degC) holds.
    floored = gate_at("custom_kdr.channel.nml", "custom_kdr_floor", "n", 40.0, 36.0)
    assert floored["tau"] == pytest.approx(0.5 * MS, rel=1e-14)
    assert gate_at("custom_kdr.channel.nml", "custom_kdr_floor", "n", 40.0, 46.0)["tau"] == pytest.approx(
        0.5 * MS / 3.0, rel=1e-14
    )
    # Below the floor's reach the variant equals the published channel at 36 degC.
    plain = gate_at("custom_kdr.channel.nml", "custom_kdr", "n", -60.0, 36.0)
    variant = gate_at("custom_kdr.channel.nml", "custom_kdr_floor", "n", -60.0, 36.0)
    assert variant == pytest.approx(plain, rel=1e-14)


def test_huguenard_mccormick_values():
    assert gate_at("q10_ka.channel.nml", "q10_ka", "m", -60.0, 23.0)["inf"] == pytest.approx(0.5)
    assert gate_at("q10_ka.channel.nml", "q10_ka2", "m", -36.0, 23.0)["inf"] == pytest.approx(0.5)
    assert gate_at("q10_ka.channel.nml", "q10_ka", "h", -78.0, 23.0)["inf"] == pytest.approx(0.5)
    # tau_m(-40 mV) = 0.37 + 1/(e^(-4.2/19.7) + e^(-39.7/12.7)) = 1.543861 ms at 23 degC.
    assert gate_at("q10_ka.channel.nml", "q10_ka", "m", -40.0, 23.0)["tau"] == pytest.approx(
        1.543861 * MS, rel=1e-6
    )
    assert gate_at("q10_ka.channel.nml", "q10_ka", "m", -40.0, 33.0)["tau"] == pytest.approx(
        1.543861 * MS / 2.8, rel=1e-6
    )
    # h1 above -63 mV: the 19 ms plateau, divided by the fixed factor 3 at any temperature.
    for celsius in (6.3, 23.0, 36.0):
        assert gate_at("q10_ka.channel.nml", "q10_ka", "h", -50.0, celsius)["tau"] == pytest.approx(19 / 3 * MS)
    # h2 above -73 mV: the 60 ms plateau with the 2.8 per 10 K factor.
    assert gate_at("q10_ka.channel.nml", "q10_ka2", "h", -50.0, 23.0)["tau"] == pytest.approx(60 * MS)
    assert gate_at("q10_ka.channel.nml", "q10_ka2", "h", -50.0, 33.0)["tau"] == pytest.approx(60 / 2.8 * MS)
    # Below the switch: 1/(e^((V + 46)/5) + e^(-(V + 238)/37.5)) at -80 mV = 28.5727 ms.
    expected = 1 / (math.exp(-34 / 5) + math.exp(-158 / 37.5))
    assert gate_at("q10_ka.channel.nml", "q10_ka2", "h", -80.0, 23.0)["tau"] == pytest.approx(expected * MS)


def test_conductance_scaling():
    scale = CONDUCTANCE_SCALING["q10_ka.channel.nml"]
    assert scale["q10_ka"](273.15 + 23.0) == pytest.approx(1.0)
    assert scale["q10_ka"](273.15 + 33.0) == pytest.approx(1.5)
    assert scale["q10_ka2"](273.15 + 33.0) == 1.0
    assert CONDUCTANCE_SCALING["hh_na.channel.nml"]["hh_na"](T_6_3 + 30) == 1.0


def test_butera_rinzel_smith_values():
    assert gate_at("inst_nap.channel.nml", "inst_nap", "m", -40.0, 36.0) == {"inf": pytest.approx(0.5)}
    h = gate_at("inst_nap.channel.nml", "inst_nap", "h", -48.0, 36.0)
    assert h == {"inf": pytest.approx(0.5), "tau": pytest.approx(10.0)}
    # 10000 ms / cosh(1) = 6480.54 ms
    assert gate_at("inst_nap.channel.nml", "inst_nap", "h", -36.0, 36.0)["tau"] == pytest.approx(6.48054, rel=1e-6)


def test_acker_kopell_white_values():
    fast = gate_at("frac_ih.channel.nml", "frac_ih", "m/fast", -79.2, 36.0)
    slow = gate_at("frac_ih.channel.nml", "frac_ih", "m/slow", -2.83, 36.0)
    assert fast["inf"] == pytest.approx(0.5)
    assert slow["inf"] == pytest.approx(2.0**-58, rel=1e-12)
    # tau_f(1.7 mV) = 0.51/(1 + e^(-341.7/52)) + 1 = 1.509287 ms at 36 degC, /3 at 46 degC.
    tau = gate_at("frac_ih.channel.nml", "frac_ih", "m/fast", 1.7, 36.0)["tau"]
    assert tau == pytest.approx(1.509287 * MS, rel=1e-6)
    assert gate_at("frac_ih.channel.nml", "frac_ih", "m/fast", 1.7, 46.0)["tau"] == pytest.approx(tau / 3)
    assert sum(CHANNELS["frac_ih.channel.nml"]["frac_ih"].fractions.values()) == pytest.approx(1.0)


# --- numerical sanity ------------------------------------------------------

SINGULAR_MV = [-55.0, -40.0, -35.0, -34.0, -48.0]


@pytest.mark.parametrize(("filename", "channel", "gate"), ALL_GATES)
@pytest.mark.parametrize("celsius", [6.3, 23.0, 36.0])
def test_finite_and_in_range(filename, channel, gate, celsius):
    v = np.concatenate([np.linspace(-0.15, 0.1, 2501), np.array(SINGULAR_MV) * MV])
    out = CLOSED_FORMS[filename][channel][gate](v, 273.15 + celsius)
    assert np.all(np.isfinite(out["inf"])) and out["inf"].shape == v.shape
    assert np.all((out["inf"] >= 0.0) & (out["inf"] <= 1.0))
    if "tau" in out:
        assert np.all(np.isfinite(out["tau"])) and out["tau"].shape == v.shape
        assert np.all(out["tau"] > 0.0)


@pytest.mark.parametrize(("filename", "channel", "gate"), ALL_GATES)
@pytest.mark.parametrize("v0_mv", SINGULAR_MV)
def test_continuous_at_removable_singularities(filename, channel, gate, v0_mv):
    offsets = np.array([-1e-9, -1e-13, 0.0, 1e-13, 1e-9])  # V
    out = CLOSED_FORMS[filename][channel][gate](v0_mv * MV + offsets, T_6_3)
    for values in out.values():
        assert values == pytest.approx(np.full_like(values, values[2]), rel=1e-6)


def test_instantaneous_gates_have_no_tau():
    assert set(CLOSED_FORMS["wb_na.channel.nml"]["wb_na"]["m"](np.zeros(3), T_6_3)) == {"inf"}
    assert set(CLOSED_FORMS["inst_nap.channel.nml"]["inst_nap"]["m"](np.zeros(3), T_6_3)) == {"inf"}


@given(st.floats(min_value=-700.0, max_value=700.0, allow_nan=False))
def test_exprel_matches_expm1(z):
    expected = 1.0 if z == 0.0 else math.expm1(z) / z
    assert float(exprel(np.array(z))) == pytest.approx(expected, rel=1e-12)


# --- the example files -----------------------------------------------------


def _channels_in(path: Path) -> dict[str, etree._Element]:
    root = etree.parse(str(path)).getroot()
    kinds = {"ionChannel", "ionChannelHH", "ionChannelKS", "ionChannelPassive"}
    return {el.get("id"): el for el in root if isinstance(el.tag, str) and el.tag.removeprefix(NML_NS) in kinds}


def _gates_in(channel: etree._Element) -> dict[str, etree._Element]:
    gates = {}
    for el in channel:
        if isinstance(el.tag, str) and el.tag.removeprefix(NML_NS).startswith("gate"):
            gates[el.get("id")] = el
    return gates


def _oracle_keys(gates: dict[str, etree._Element]) -> set[str]:
    keys = set()
    for gate_id, el in gates.items():
        subgates = el.findall(NML_NS + "subGate")
        keys |= {f"{gate_id}/{sub.get('id')}" for sub in subgates} if subgates else {gate_id}
    return keys


def test_every_example_file_has_a_closed_form():
    files = sorted(path.name for path in EXAMPLES.glob("*.nml"))
    assert files == sorted(CLOSED_FORMS)
    assert sorted(CHANNELS) == sorted(CONDUCTANCE_SCALING) == files


@pytest.mark.parametrize("filename", sorted(CLOSED_FORMS))
def test_oracle_covers_channels_and_gates_of_file(filename):
    channels = _channels_in(EXAMPLES / filename)
    assert set(channels) == set(CLOSED_FORMS[filename]) == set(CHANNELS[filename])
    for channel_id, channel in channels.items():
        gates = _gates_in(channel)
        facts = CHANNELS[filename][channel_id]
        assert _oracle_keys(gates) == set(CLOSED_FORMS[filename][channel_id])
        assert {gate_id: int(el.get("instances")) for gate_id, el in gates.items()} == dict(facts.instances)
        assert channel.get("species") == facts.species
        value, unit = re.fullmatch(r"\s*([-+0-9.eE]+)\s*(pS)\s*", channel.get("conductance")).groups()
        assert float(value) * 1e-12 == pytest.approx(facts.conductance)
        for key, fraction in facts.fractions.items():
            gate_id, sub_id = key.split("/")
            sub = gates[gate_id].find(f"{NML_NS}subGate[@id='{sub_id}']")
            assert float(sub.get("fractionalConductance")) == pytest.approx(fraction)


@pytest.fixture(scope="module")
def neuroml_schema() -> etree.XMLSchema:
    neuroml = pytest.importorskip("neuroml")
    xsd = Path(neuroml.__file__).parent / "nml" / "NeuroML_v2.3.1.xsd"
    if not xsd.exists():
        pytest.skip(f"libNeuroML has no bundled schema at {xsd}")
    return etree.XMLSchema(etree.parse(str(xsd)))


@pytest.mark.parametrize("filename", sorted(CLOSED_FORMS))
def test_example_file_is_valid_neuroml(filename, neuroml_schema):
    document = etree.parse(str(EXAMPLES / filename))  # raises if not well-formed
    assert document.getroot().tag == NML_NS + "neuroml"
    assert document.getroot().find(NML_NS + "notes") is not None
    valid = neuroml_schema.validate(document)
    assert valid, "\n".join(f"line {err.line}: {err.message}" for err in neuroml_schema.error_log)
