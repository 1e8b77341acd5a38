"""Acceptance: whole cells built from example_channels/ spike like hand-written Brian2 models.

Two single-compartment cells, each simulated three ways on Brian2's numpy
target with exponential Euler at dt = 0.01 ms:

* ``lut``: channels from nml2lut with lookup tables;
* ``exact``: channels from nml2lut with the exact rate expressions;
* ``hand``: the model's rate equations typed here as Brian2 strings from the
  paper (no nml2lut, no NeuroML), with ``exprel`` for the ``x/(1 - exp(-x))``
  forms and the gates set to their steady state by hand.

Hodgkin & Huxley (1952) at 6.3 degC from hh_na, hh_k and hh_leak; Wang &
Buzsaki (1996, phi = 5) from wb_na and wb_k with a leak written in Brian2.
The spike counts must agree; ``exact`` spike times within one time step of
``hand``, ``lut`` within 0.2 ms.  ``pytest -s`` prints the worst differences.
"""

from __future__ import annotations

from pathlib import Path

import brian2 as b2
import numpy as np
import pytest
from brian2 import cm, mS, ms, mV, uA, uF

import nml2lut

pytestmark = pytest.mark.slow  # six 100 ms simulations on the numpy target: tens of seconds

EXAMPLES = Path(__file__).resolve().parents[1] / "example_channels"

DT = 0.01 * ms
DURATION = 100 * ms
THRESHOLD = "v > -20*mV"  # crossed upwards once per spike; refractory while above
EXACT_SPIKE_TOLERANCE = 0.01  # ms: one time step
LUT_SPIKE_TOLERANCE = 0.2  # ms

MEMBRANE = "dv/dt = (I_app - I_ion)/Cm : volt\nI_app : amp/meter**2\n"

# --------------------------------------------------------------------------
# Hodgkin & Huxley (1952): modern convention, rest at -65 mV, rates in 1/ms.
# --------------------------------------------------------------------------

HH = {
    "temperature": "6.3degC",
    "celsius": 6.3,
    "Cm": 1 * uF / cm**2,
    "g": {"Na": 120 * mS / cm**2, "K": 36 * mS / cm**2, "L": 0.3 * mS / cm**2},
    "E": {"Na": 50 * mV, "K": -77 * mV, "L": -54.387 * mV},
    "I_app": np.linspace(7, 20, 5),  # uA/cm^2
}

HH_HAND = """
I_ion = gNa*m**3*h*(v - ENa) + gK*n**4*(v - EK) + gL*(v - EL) : amp/meter**2
dm/dt = phi*(alpha_m*(1 - m) - beta_m*m) : 1
dh/dt = phi*(alpha_h*(1 - h) - beta_h*h) : 1
dn/dt = phi*(alpha_n*(1 - n) - beta_n*n) : 1
alpha_m = 1/exprel(-(v + 40*mV)/(10*mV))/ms : Hz
beta_m = 4*exp(-(v + 65*mV)/(18*mV))/ms : Hz
alpha_h = 0.07*exp(-(v + 65*mV)/(20*mV))/ms : Hz
beta_h = 1/(1 + exp(-(v + 35*mV)/(10*mV)))/ms : Hz
alpha_n = 0.1/exprel(-(v + 55*mV)/(10*mV))/ms : Hz
beta_n = 0.125*exp(-(v + 65*mV)/(80*mV))/ms : Hz
"""
HH_HAND_INIT = {
    "m": "alpha_m/(alpha_m + beta_m)",
    "h": "alpha_h/(alpha_h + beta_h)",
    "n": "alpha_n/(alpha_n + beta_n)",
}

# --------------------------------------------------------------------------
# Wang & Buzsaki (1996): m instantaneous, phi = 5 on h and n, rates in 1/ms.
# --------------------------------------------------------------------------

WB = {
    "temperature": "6.3degC",  # q10Fixed only: the temperature does not matter
    "Cm": 1 * uF / cm**2,
    "g": {"Na": 35 * mS / cm**2, "K": 9 * mS / cm**2, "L": 0.1 * mS / cm**2},
    "E": {"Na": 55 * mV, "K": -90 * mV, "L": -65 * mV},
    "I_app": np.linspace(0.5, 3, 5),  # uA/cm^2
}

WB_HAND = """
I_ion = gNa*m_inf**3*h*(v - ENa) + gK*n**4*(v - EK) + gL*(v - EL) : amp/meter**2
m_inf = alpha_m/(alpha_m + beta_m) : 1
dh/dt = phi*(alpha_h*(1 - h) - beta_h*h) : 1
dn/dt = phi*(alpha_n*(1 - n) - beta_n*n) : 1
alpha_m = 1/exprel(-(v + 35*mV)/(10*mV))/ms : Hz
beta_m = 4*exp(-(v + 60*mV)/(18*mV))/ms : Hz
alpha_h = 0.07*exp(-(v + 58*mV)/(20*mV))/ms : Hz
beta_h = 1/(exp(-0.1*(v + 28*mV)/mV) + 1)/ms : Hz
alpha_n = 0.1/exprel(-(v + 34*mV)/(10*mV))/ms : Hz
beta_n = 0.125*exp(-(v + 44*mV)/(80*mV))/ms : Hz
"""
WB_HAND_INIT = {"h": "alpha_h/(alpha_h + beta_h)", "n": "alpha_n/(alpha_n + beta_n)"}
WB_PHI = 5.0


@pytest.fixture
def numpy_target():
    """Brian2's numpy target, without the unit-checking wrapper around functions.

    The wrapper formats every result array into a string on every call
    (BRIAN2-NOTES.md): with 5 neurons it tripled the run time of ``exprel``.
    """
    prefs = b2.prefs.codegen
    previous = prefs.target, prefs.runtime.numpy.discard_units
    prefs.target, prefs.runtime.numpy.discard_units = "numpy", True
    try:
        yield
    finally:
        prefs.target, prefs.runtime.numpy.discard_units = previous


def _run(name: str, equations: b2.Equations, namespace: dict, cell: dict, setup) -> list[np.ndarray]:
    """Simulate ``len(cell["I_app"])`` cells from v = -65 mV; spike times (ms) per cell."""
    b2.start_scope()
    group = b2.NeuronGroup(
        len(cell["I_app"]), equations, namespace={"Cm": cell["Cm"], **namespace}, method="exponential_euler",
        threshold=THRESHOLD, refractory=THRESHOLD, dt=DT, name=name,
    )  # fmt: skip
    group.v = -65 * mV
    group.I_app = cell["I_app"] * uA / cm**2
    setup(group)
    spikes = b2.SpikeMonitor(group, name=f"{name}_spikes")
    b2.Network(group, spikes).run(DURATION, namespace={})
    return [np.asarray(train / ms) for train in spikes.spike_trains().values()]


def _run_nml2lut(mode: str, files: dict[str, str], cell: dict, extra: str = "") -> list[np.ndarray]:
    channels = [
        nml2lut.load_channel(EXAMPLES / f"{stem}.channel.nml", name=name, temperature=cell["temperature"], mode=mode)
        for name, stem in files.items()
    ]
    currents = " + ".join([f"I_{c.name}" for c in channels] + (["I_L"] if extra else []))
    equations = b2.Equations(MEMBRANE + f"I_ion = {currents} : amp/meter**2\n" + extra)
    namespace = {}
    for channel in channels:
        equations += channel.equations
        namespace.update(channel.namespace)

    def setup(group):
        for name in cell["g"]:
            if f"g_{name}" in group.variables:
                setattr(group, f"g_{name}", cell["g"][name])
                setattr(group, f"E_{name}", cell["E"][name])
        for channel in channels:
            channel.init(group)

    return _run(f"cell_{mode}", equations, namespace, cell, setup)


def _run_hand(hand: str, init: dict[str, str], cell: dict, phi: float) -> list[np.ndarray]:
    namespace = {f"g{k}": g for k, g in cell["g"].items()} | {f"E{k}": e for k, e in cell["E"].items()}
    namespace["phi"] = phi

    def setup(group):
        for state, expression in init.items():
            setattr(group, state, expression)

    return _run("cell_hand", b2.Equations(MEMBRANE + hand), namespace, cell, setup)


def _compare(label: str, reference: list[np.ndarray], other: list[np.ndarray], tolerance_ms: float) -> float:
    counts = ([len(t) for t in reference], [len(t) for t in other])
    assert counts[0] == counts[1], f"{label}: spike counts differ: {counts}"
    assert min(counts[0]) >= 3, f"{label}: the cells should fire repetitively: {counts[0]}"
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(reference, other, strict=True))
    print(f"\n{label}: spike counts {counts[0]}, worst spike-time difference {worst:.4f} ms")
    assert worst <= tolerance_ms + 1e-9, f"{label}: spike times differ by up to {worst} ms"
    return worst


def test_hodgkin_huxley_cell(numpy_target):
    files = {"Na": "hh_na", "K": "hh_k", "L": "hh_leak"}
    phi = 3.0 ** ((HH["celsius"] - 6.3) / 10.0)
    hand = _run_hand(HH_HAND, HH_HAND_INIT, HH, phi)
    exact = _run_nml2lut("exact", files, HH)
    lut = _run_nml2lut("lut", files, HH)
    _compare("HH exact vs hand-written", hand, exact, EXACT_SPIKE_TOLERANCE)
    _compare("HH lut vs hand-written", hand, lut, LUT_SPIKE_TOLERANCE)


def test_wang_buzsaki_cell(numpy_target):
    files = {"Na": "wb_na", "K": "wb_k"}
    leak = "I_L = g_L*(v - E_L) : amp/meter**2\ng_L : siemens/meter**2\nE_L : volt\n"
    hand = _run_hand(WB_HAND, WB_HAND_INIT, WB, WB_PHI)
    exact = _run_nml2lut("exact", files, WB, extra=leak)
    lut = _run_nml2lut("lut", files, WB, extra=leak)
    _compare("WB exact vs hand-written", hand, exact, EXACT_SPIKE_TOLERANCE)
    _compare("WB lut vs hand-written", hand, lut, LUT_SPIKE_TOLERANCE)
