"""Kinetic schemes, concentration dependence, voltage shifts and custom gate types.

Curves are checked against closed forms written here independently; the
simulations check lut against exact mode, and the three Brian2 targets
against one another.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import nml2lut
from nml2lut import ModelError, UnitError, UnsupportedError
from nml2lut.parse.kinetic import IgnoredByCoreTypesWarning
from tests.helpers import write_nml

KS = """
<ionChannelKS id="kks" conductance="10pS" species="k">
  <gateKS id="n" instances="1">
    <closedState id="c1"/>
    <closedState id="c2"/>
    <openState id="o"/>
    <forwardTransition id="a1" from="c1" to="c2">
      <rate type="HHExpLinearRate" rate="0.1per_ms" midpoint="-55mV" scale="10mV"/>
    </forwardTransition>
    <reverseTransition id="b1" from="c1" to="c2">
      <rate type="HHExpRate" rate="0.125per_ms" midpoint="-65mV" scale="-80mV"/>
    </reverseTransition>
    <vHalfTransition id="h" from="c2" to="o" vHalf="-30mV" z="2" gamma="0.6" tau="2ms" tauMin="0.1ms"/>
  </gateKS>
</ionChannelKS>
"""

KCA = """
<ComponentType name="hillRate" extends="baseVoltageConcDepRate">
  <Parameter name="rmax" dimension="per_time"/>
  <Parameter name="kd" dimension="concentration"/>
  <Constant name="MV" dimension="voltage" value="1mV"/>
  <Dynamics>
    <DerivedVariable name="r" dimension="per_time" exposure="r"
       value="rmax * (caConc/kd)^2 / (1 + (caConc/kd)^2) * exp(v / (40*MV))"/>
  </Dynamics>
</ComponentType>
<ionChannelHH id="kca" conductance="10pS" species="k">
  <gateHHrates id="c" instances="1">
    <forwardRate type="hillRate" rmax="1per_ms" kd="0.001mM"/>
    <reverseRate type="HHExpRate" rate="0.2per_ms" midpoint="0mV" scale="-30mV"/>
  </gateHHrates>
</ionChannelHH>
"""


def _ks_rates(v):
    x1 = (v * 1e3 + 55) / 10
    a1 = 100.0 * x1 / -np.expm1(-x1)
    b1 = 125.0 * np.exp((v * 1e3 + 65) / -80)
    kte = 25.3e-3
    rf0 = np.exp(2 * 0.6 * (v + 0.03) / kte) / 2e-3
    rr0 = np.exp(-2 * 0.4 * (v + 0.03) / kte) / 2e-3
    return a1, b1, 1 / (1 / rf0 + 1e-4), 1 / (1 / rr0 + 1e-4)


@pytest.fixture(scope="module")
def ks_file(tmp_path_factory):
    return write_nml(tmp_path_factory.mktemp("ks"), KS)


@pytest.fixture(scope="module")
def kca_file(tmp_path_factory):
    return write_nml(tmp_path_factory.mktemp("kca"), KCA)


V = np.linspace(-0.099, 0.059, 317)


@pytest.mark.parametrize("mode", ["exact", "lut"])
def test_kinetic_transition_rates(ks_file, mode):
    channel = nml2lut.load_channel(ks_file, mode=mode)
    curves = channel.curves(V)
    a1, b1, hf, hr = _ks_rates(V)
    tolerance = 1e-9 if mode == "exact" else 2e-4
    for key, rate, expected in (("n/a1", "rf", a1), ("n/b1", "rr", b1), ("n/h", "rf", hf), ("n/h", "rr", hr)):
        assert np.max(np.abs(curves[key][rate] / expected - 1)) < tolerance, key
    assert np.all(curves["n/a1"]["rr"] == 0) and np.all(curves["n/b1"]["rf"] == 0)


def _simulate_ks(channel, target, v_steps, dt_ms=0.01, every=1):
    import brian2 as b2

    b2.start_scope()
    b2.prefs.codegen.target = target
    b2.defaultclock.dt = dt_ms * b2.ms
    group = b2.NeuronGroup(len(v_steps[0]), b2.Equations("v : volt") + channel.equations,
                           namespace=channel.namespace, method="exponential_euler", name="ks_cells")  # fmt: skip
    group.v = v_steps[0] * b2.volt
    channel.init(group)
    states = [f"n_{state}_{channel.name}" for state in ("c1", "c2", "o")]
    monitor = b2.StateMonitor(group, [f"fopen_{channel.name}", *states], record=True, name="ks_monitor",
                              dt=every * dt_ms * b2.ms)  # fmt: skip
    for v in v_steps:
        group.v = v * b2.volt
        b2.run(2 * b2.ms)
    return monitor, states


def test_kinetic_scheme_simulates_like_exact_mode_and_conserves_occupancy(ks_file):
    steps = [np.array([-0.08, -0.065, -0.05]), np.array([0.0, -0.02, 0.03]), np.array([-0.09, -0.07, -0.04])]
    lut = nml2lut.load_channel(ks_file, name="L", mode="lut", dt="0.01ms")
    exact = nml2lut.load_channel(ks_file, name="X", mode="exact")
    m_lut, states = _simulate_ks(lut, "numpy", steps)
    total = sum(getattr(m_lut, s) for s in states)
    assert np.max(np.abs(total - 1)) < 1e-12
    assert min(getattr(m_lut, s).min() for s in states) >= 0.0
    # Exact mode integrates the occupancy ODEs with exponential Euler, which needs
    # a small step for a coupled scheme; lut mode steps by the exact transition matrix.
    m_exact, _ = _simulate_ks(exact, "numpy", steps, dt_ms=0.001, every=10)
    difference = np.max(np.abs(m_lut.fopen_L - m_exact.fopen_X))
    print(f"\nkinetic scheme, lut (dt 0.01 ms) vs exact (dt 0.001 ms) fopen: max difference {difference:.2e}")
    assert difference < 2e-3


def test_kinetic_scheme_starts_at_steady_state(ks_file):
    channel = nml2lut.load_channel(ks_file, name="L", dt="0.01ms")
    monitor, states = _simulate_ks(channel, "numpy", [np.array([-0.07, -0.03])])
    first = np.array([getattr(monitor, s)[:, 0] for s in states])
    last = np.array([getattr(monitor, s)[:, -1] for s in states])
    assert np.max(np.abs(first - last)) < 1e-4


def test_stiff_scheme_stays_bounded(ks_file, tmp_path):
    stiff = KS.replace('tau="2ms" tauMin="0.1ms"', 'tau="0.001ms" tauMin="0.0001ms"')
    channel = nml2lut.load_channel(write_nml(tmp_path, stiff), name="S", dt="0.1ms")
    monitor, states = _simulate_ks(channel, "numpy", [np.array([-0.08, 0.04]), np.array([0.04, -0.08])], dt_ms=0.1)
    occupancy = np.array([getattr(monitor, s) for s in states])
    assert occupancy.min() >= 0 and np.max(np.abs(occupancy.sum(axis=0) - 1)) < 1e-12


def test_kinetic_init_refuses_another_dt(ks_file):
    import brian2 as b2

    channel = nml2lut.load_channel(ks_file, name="L", dt="0.025ms")
    b2.start_scope()
    b2.defaultclock.dt = 0.01 * b2.ms
    group = b2.NeuronGroup(1, b2.Equations("v : volt") + channel.equations, namespace=channel.namespace)
    with pytest.raises(ModelError, match="tabulated for dt = 0.025 ms"):
        channel.init(group)


def test_kinetic_q10_and_scaling_are_ignored_as_in_the_core_types(tmp_path):
    text = KS.replace('<gateKS id="n" instances="1">',
                      '<gateKS id="n" instances="1"><q10Settings type="q10Fixed" fixedQ10="3"/>')  # fmt: skip
    text = text.replace('species="k">', 'species="k"><q10ConductanceScaling q10Factor="2" experimentalTemp="20degC"/>')
    with pytest.warns(IgnoredByCoreTypesWarning) as record:
        channel = nml2lut.load_channel(write_nml(tmp_path, text), mode="exact", temperature="30degC")
    assert len(record) == 2
    a1, *_ = _ks_rates(V)
    assert np.allclose(channel.curves(V)["n/a1"]["rf"], a1, rtol=1e-9)


@pytest.mark.parametrize(
    ("old", "new", "error", "message"),
    [
        ('<openState id="o"/>', "", ModelError, "unknown state 'o'"),
        ('to="c2">', 'to="c2"', ModelError, "not well-formed|needs exactly one"),
        ('<closedState id="c2"/>', '<closedState id="c1"/>', ModelError, "duplicate state ids"),
        ('id="b1"', 'id="a1"', ModelError, "duplicate transition ids"),
        ('<vHalfTransition id="h"', '<bogusTransition id="h"', UnsupportedError, "bogusTransition"),
    ],
)
def test_kinetic_scheme_errors(tmp_path, old, new, error, message):
    text = KS.replace(old, new, 1)
    if "bogus" in new:
        text = text.replace("/>\n  </gateKS>", "/>\n  </gateKS>")
    with pytest.raises((error, nml2lut.ParseError), match=message):
        nml2lut.load_channel(write_nml(tmp_path, text), mode="exact")


def _kca_expected(v, ca):
    alpha = 1000.0 * (ca / 1e-3) ** 2 / (1 + (ca / 1e-3) ** 2) * np.exp(v / 0.04)
    beta = 200.0 * np.exp(v / -0.03)
    return alpha / (alpha + beta), 1 / (alpha + beta)


@pytest.mark.parametrize("mode", ["exact", "lut"])
def test_concentration_dependent_curves(kca_file, mode):
    channel = nml2lut.load_channel(kca_file, mode=mode)
    for ca in (1e-6, 3e-5, 5e-4, 1e-3, 0.2, 7.0):
        inf, tau = _kca_expected(V, ca)
        curves = channel.curves(V, conc=ca)["c"]
        tolerance = 1e-9 if mode == "exact" else 1e-3
        assert np.max(np.abs(curves["inf"] - inf)) < tolerance
        assert np.max(np.abs(curves["tau"] / tau - 1)) < tolerance
    if mode == "lut":
        assert channel.tables2d is not None and channel.max_error <= 1e-4
    with pytest.raises(ModelError, match="pass conc="):
        channel.curves(V)


def test_repr_summarises_without_the_table_values(kca_file):
    lut = repr(nml2lut.load_channel(kca_file))
    n_v, n_c = nml2lut.load_channel(kca_file).tables2d.table.values.shape[:2]
    assert lut.startswith("LoadedChannel(id=") and "gates=['c']" in lut and "max_error=" in lut
    assert f"tables2d={n_v} x {n_c} (v x Ca_i)" in lut and len(lut) < 300
    exact = repr(nml2lut.load_channel(kca_file, mode="exact"))
    assert "mode='exact'" in exact and "max_error" not in exact and "grid" not in exact


def _simulate_kca(channel, target):
    import brian2 as b2

    b2.start_scope()
    b2.prefs.codegen.target = target
    b2.defaultclock.dt = 0.025 * b2.ms
    eqs = b2.Equations("v : volt\nCa_i : mmolar") + channel.equations
    group = b2.NeuronGroup(4, eqs, namespace=channel.namespace, method="exponential_euler", name="kca_cells")
    group.v = [-0.07, -0.04, 0.0, 0.02] * b2.volt
    group.Ca_i = [1e-5, 5e-4, 2e-3, 0.05] * b2.mmolar
    channel.init(group)
    monitor = b2.StateMonitor(group, [f"c_{channel.name}"], record=True, name="kca_monitor")
    b2.run(1 * b2.ms)
    group.Ca_i = [2e-3, 1e-5, 0.05, 5e-4] * b2.mmolar
    b2.run(4 * b2.ms)
    return getattr(monitor, f"c_{channel.name}")


def test_concentration_dependent_channel_simulates_like_exact(kca_file):
    lut = _simulate_kca(nml2lut.load_channel(kca_file, name="C"), "numpy")
    exact = _simulate_kca(nml2lut.load_channel(kca_file, name="C", mode="exact"), "numpy")
    assert np.max(np.abs(lut - exact)) < 1e-3


@pytest.mark.cython
def test_concentration_and_kinetic_channels_in_cython(kca_file, ks_file):
    lut = nml2lut.load_channel(kca_file, name="C")
    assert np.allclose(_simulate_kca(lut, "cython"), _simulate_kca(lut, "numpy"), rtol=1e-9, atol=1e-12)
    ks = nml2lut.load_channel(ks_file, name="L", dt="0.01ms")
    steps = [np.array([-0.08, 0.0]), np.array([0.02, -0.06])]
    cython_run, _ = _simulate_ks(ks, "cython", steps)
    numpy_run, _ = _simulate_ks(ks, "numpy", steps)
    assert np.allclose(cython_run.fopen_L, numpy_run.fopen_L, rtol=1e-9, atol=1e-12)


def _mixed_run(kca, ks):
    """Both channels in one group, v and Ca_i fixed, 2 ms; returns (c_C, fopen_L) traces."""
    import brian2 as b2

    b2.defaultclock.dt = 0.025 * b2.ms
    eqs = b2.Equations("v : volt\nCa_i : mmolar") + kca.equations + ks.equations
    group = b2.NeuronGroup(2, eqs, namespace={**kca.namespace, **ks.namespace}, method="exponential_euler",
                           name="mixed_cells")  # fmt: skip
    group.v = [-0.05, 0.01] * b2.volt
    group.Ca_i = [2e-4, 3e-3] * b2.mmolar
    kca.init(group)
    ks.init(group)
    monitor = b2.StateMonitor(group, ["c_C", "fopen_L"], record=True, name="mixed_monitor")
    b2.run(2 * b2.ms)
    return np.array(monitor.c_C), np.array(monitor.fopen_L)


@pytest.mark.cpp_standalone
def test_concentration_and_kinetic_channels_in_cpp_standalone(kca_file, ks_file, standalone_device):
    import brian2 as b2

    kca = nml2lut.load_channel(kca_file, name="C")
    ks = nml2lut.load_channel(ks_file, name="L", dt="0.025ms")
    standalone = _mixed_run(kca, ks)
    b2.device.reinit()
    b2.device.activate()
    b2.set_device("runtime")
    b2.start_scope()
    b2.prefs.codegen.target = "numpy"
    numpy_run = _mixed_run(kca, ks)
    assert np.allclose(standalone[0], numpy_run[0], rtol=1e-9, atol=1e-12)
    assert np.allclose(standalone[1], numpy_run[1], rtol=1e-9, atol=1e-12)


VSHIFT = """
<ComponentType name="shiftedRate" extends="baseVoltageDepRate">
  <Requirement name="vShift" dimension="voltage"/>
  <Constant name="MS" dimension="time" value="1ms"/>
  <Constant name="MV" dimension="voltage" value="1mV"/>
  <Dynamics>
    <DerivedVariable name="r" dimension="per_time" exposure="r" value="exp((v - vShift + 40*MV)/(10*MV)) / MS"/>
  </Dynamics>
</ComponentType>
<ionChannel id="ks" type="ionChannelHH" conductance="10pS">
  <gateHHrates id="m" instances="1">
    <forwardRate type="shiftedRate"/>
    <reverseRate type="HHExpRate" rate="1per_ms" midpoint="-40mV" scale="-10mV"/>
  </gateHHrates>
</ionChannel>
"""


def test_voltage_shift(tmp_path):
    path = write_nml(tmp_path, VSHIFT)
    with pytest.raises(ModelError, match="vShift"):
        nml2lut.load_channel(path, mode="exact")
    with pytest.raises(UnitError, match="voltage"):
        nml2lut.load_channel(path, mode="exact", vshift="5ms")
    shifted = nml2lut.load_channel(path, mode="exact", vshift="5mV").curves(V)["m"]["inf"]
    expected_alpha = 1000 * np.exp((V * 1e3 - 5 + 40) / 10)
    expected_beta = 1000 * np.exp((V * 1e3 + 40) / -10)
    assert np.allclose(shifted, expected_alpha / (expected_alpha + expected_beta), rtol=1e-9)
    own = VSHIFT.replace('type="ionChannelHH"', 'type="ionChannelVShift" vShift="5mV"')
    assert np.allclose(nml2lut.load_channel(write_nml(tmp_path, own, "own.nml"), mode="exact").curves(V)["m"]["inf"],
                       shifted, rtol=1e-12)  # fmt: skip


CUSTOM_GATE = """
<ComponentType name="instantRates" extends="gateHHrates">
  <Dynamics>
    <DerivedVariable name="alpha" dimension="per_time" select="forwardRate/r"/>
    <DerivedVariable name="beta" dimension="per_time" select="reverseRate/r"/>
    <DerivedVariable name="inf" dimension="none" value="alpha/(alpha+beta)"/>
    <DerivedVariable name="q" dimension="none" value="inf"/>
    <DerivedVariable name="fcond" dimension="none" value="FCOND"/>
  </Dynamics>
</ComponentType>
<ionChannelHH id="nat" conductance="10pS">
  <gateHHrates type="instantRates" id="m" instances="3">
    <forwardRate type="HHExpLinearRate" rate="1per_ms" midpoint="-40mV" scale="10mV"/>
    <reverseRate type="HHExpRate" rate="4per_ms" midpoint="-65mV" scale="-18mV"/>
  </gateHHrates>
</ionChannelHH>
"""


def test_custom_instantaneous_gate_type(tmp_path):
    channel = nml2lut.load_channel(write_nml(tmp_path, CUSTOM_GATE.replace("FCOND", "q^instances")), mode="exact")
    x = (V * 1e3 + 40) / 10
    with np.errstate(all="ignore"):
        alpha = np.where(x == 0, 1000.0, 1000 * x / -np.expm1(-x))
    beta = 4000 * np.exp((V * 1e3 + 65) / -18)
    curves = channel.curves(V)["m"]
    assert set(curves) == {"inf"}
    assert np.allclose(curves["inf"], alpha / (alpha + beta), rtol=1e-9)
    assert "m_Na" not in str(channel.equations) and "m_nat**3" in str(channel.equations)


def test_custom_fcond_is_kept(tmp_path):
    channel = nml2lut.load_channel(write_nml(tmp_path, CUSTOM_GATE.replace("FCOND", "1 + (q - 1)*0.25")))
    assert "(1.0) + (((m_nat) - (1.0)) * (0.25))" in str(channel.equations)


def test_nonlinear_custom_gate_dynamics_are_unsupported(tmp_path):
    text = """
<ComponentType name="squareGate" extends="gateHHtauInf">
  <Dynamics>
    <StateVariable name="q" dimension="none"/>
    <DerivedVariable name="inf" dimension="none" select="steadyState/x"/>
    <DerivedVariable name="tau" dimension="time" select="timeCourse/t"/>
    <TimeDerivative variable="q" value="(inf - q*q) / tau"/>
  </Dynamics>
</ComponentType>
<ionChannelHH id="sq" conductance="10pS">
  <gate type="squareGate" id="m" instances="1">
    <timeCourse type="fixedTimeCourse" tau="1ms"/>
    <steadyState type="HHSigmoidVariable" rate="1" midpoint="-40mV" scale="5mV"/>
  </gate>
</ionChannelHH>"""
    with pytest.raises(UnsupportedError, match="not linear in q"):
        nml2lut.load_channel(write_nml(tmp_path, text), mode="exact")
    linear = text.replace("(inf - q*q) / tau", "(inf - q) / tau")
    channel = nml2lut.load_channel(write_nml(tmp_path, linear, "linear.nml"), mode="exact")
    inf = 1 / (1 + np.exp(-(V * 1e3 + 40) / 5))
    curves = channel.curves(V)["m"]
    assert np.allclose(curves["inf"], inf, rtol=1e-12) and np.allclose(curves["tau"], 1e-3, rtol=1e-12)
    assert math.isclose(float(np.mean(curves["tau"])), 1e-3)


def test_channels_in_lems_files_and_across_includes(tmp_path):
    write_nml(tmp_path, KS, "ks.nml")
    lems = ('<Lems>\n<Include file="ks.nml"/>\n<Include file="Cells.xml"/>\n'
            + KCA.replace('id="kca"', 'id="kca_lems"') + "\n</Lems>\n")  # fmt: skip
    path = tmp_path / "LEMS_test.xml"
    path.write_text(lems)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        channels = nml2lut.load_channels(path, mode="exact")
    assert [c.id for c in channels] == ["kks", "kca_lems"]
