"""tabulate and lookup_function: hand-written Brian2 models against their exact selves and closed forms.

The Wang-Buzsaki model is written as Brian2's own example writes it (rates in Hz,
``exp(...) - 1`` denominators with a removable singularity), with ``phi`` a
per-neuron parameter.  Exact and tabulated versions run side by side in one
network, so every target builds once: 200 ms in numpy (dt 0.025 ms), 300 ms in Cython
and 1 s in cpp_standalone (dt 0.01 ms), spike times within 0.2 ms.
"""

from __future__ import annotations

import warnings

import brian2
import numpy as np
import pytest
from brian2 import (
    Equations,
    Network,
    NeuronGroup,
    SpikeMonitor,
    defaultclock,
    exp,
    hertz,
    mM,
    ms,
    msiemens,
    mV,
    prefs,
    second,
    uA,
    uF,
    volt,
)

from nml2lut.errors import ModelError, TableError, UnitError
from nml2lut.tables import SingularityWarning
from nml2lut.tabulate import ERROR_FLOOR, TOLERANCE, Tabulated, lookup_function, tabulate

WB = """
dv/dt = (-gNa*m_inf**3*h*(v - ENa) - gK*n**4*(v - EK) - gL*(v - EL) + I)/Cm : volt
m_inf = alpha_m/(alpha_m + beta_m) : 1
alpha_m = -0.1/mV*(v + 35*mV)/(exp(-0.1/mV*(v + 35*mV)) - 1)/ms : Hz
beta_m = 4*exp(-(v + 60*mV)/(18*mV))/ms : Hz
dh/dt = phi*(alpha_h*(1 - h) - beta_h*h) : 1
alpha_h = 0.07*exp(-(v + 58*mV)/(20*mV))/ms : Hz
beta_h = 1./(exp(-0.1/mV*(v + 28*mV)) + 1)/ms : Hz
dn/dt = phi*(alpha_n*(1 - n) - beta_n*n) : 1
alpha_n = -0.01/mV*(v + 34*mV)/(exp(-0.1/mV*(v + 34*mV)) - 1)/ms : Hz
beta_n = 0.125*exp(-(v + 44*mV)/(80*mV))/ms : Hz
I : amp
phi : 1
"""
PARAMS = {"Cm": 1 * uF, "gL": 0.1 * msiemens, "EL": -65 * mV, "ENa": 55 * mV, "EK": -90 * mV,
          "gNa": 35 * msiemens, "gK": 9 * msiemens}  # fmt: skip
CURRENTS = [0.5, 1, 2, 5, 10] * uA
TOLERANCE_SPIKE = 0.2e-3  # s

pytestmark = pytest.mark.filterwarnings("ignore::nml2lut.tables.SingularityWarning")


def wb_curves(v: np.ndarray) -> dict[str, np.ndarray]:
    """Closed forms (SI) of Wang & Buzsaki (1996), written independently of the equations above."""
    u = v * 1e3  # mV

    def linoid(y):  # y/(1 - exp(-y)), 1 at y = 0
        with np.errstate(all="ignore"):
            return np.where(y == 0, 1.0, -y / np.expm1(-y))

    alpha_m = 1e3 * linoid(0.1 * (u + 35))
    beta_m = 1e3 * 4 * np.exp(-(u + 60) / 18)
    m_inf = alpha_m / (alpha_m + beta_m)
    return {
        "alpha_m": alpha_m,
        "beta_m": beta_m,
        "m_inf": m_inf,
        "alpha_h": 1e3 * 0.07 * np.exp(-(u + 58) / 20),
        "beta_h": 1e3 / (np.exp(-0.1 * (u + 28)) + 1),
        "alpha_n": 1e3 * 0.1 * linoid(0.1 * (u + 34)),
        "beta_n": 1e3 * 0.125 * np.exp(-(u + 44) / 80),
    }


@pytest.fixture(scope="module")
def wb() -> Tabulated:
    return tabulate(WB, namespace=PARAMS)


@pytest.fixture
def numpy_target():
    previous = prefs.codegen.target
    prefs.codegen.target = "numpy"
    yield
    prefs.codegen.target = previous


def _within(got, exact, tolerance, peak):
    """The error bound `tabulate` measures against, with a margin for points it did not sample."""
    return np.abs(got - exact) <= 1.5 * tolerance * np.maximum(np.abs(exact), ERROR_FLOOR * peak)


# --- what is tabulated ------------------------------------------------------------------------


def test_wb_report(wb):
    # the columns the model reads at run time, in one table ...
    hot = ["alpha_h", "alpha_n", "beta_h", "beta_n", "m_inf"]
    assert [(p.where, p.function, p.column) for p in wb.report[:5]] == [
        (where, wb.function_name, k) for k, where in enumerate(hot)]  # fmt: skip
    # ... the other subexpressions of v (read by nothing else) in a second one, on the same grid
    cold = wb.report[5].function
    assert cold != wb.function_name
    assert [(p.where, p.function, p.column) for p in wb.report[5:]] == [("alpha_m", cold, 0), ("beta_m", cold, 1)]
    assert [p.unit for p in wb.report] == ["hertz"] * 4 + ["1"] + ["hertz"] * 2
    assert all(p.whole for p in wb.report) and all(p.max_error <= TOLERANCE for p in wb.report)
    assert wb.report[0].expression == "0.07*exp(-(v + 58*mV)/(20*mV))/ms"
    text = str(wb)
    assert f"{wb.function_name}(v, 0): alpha_h = 0.07*exp(" in text and "max error" in text


def test_wb_equations_keep_their_form(wb):
    eqs, original, name = wb.equations, Equations(WB), wb.function_name
    assert eqs["alpha_h"].expr.code == f"{name}(v, 0)*hertz"
    assert eqs["m_inf"].expr.code == f"{name}(v, 4)"
    # the differential equations as written: phi (per-neuron) and m_inf**3 (a cube costs less
    # than the finer grid a tabulated cube would need) stay
    for state in ("v", "h", "n"):
        assert eqs[state] == original[state], state
    assert eqs["phi"].type == "parameter"
    assert set(wb.namespace) == {name, wb.report[5].function, *PARAMS}


def test_wb_curves_match_closed_forms(wb):
    rng = np.random.default_rng(1)
    v = np.sort(rng.uniform(-0.1, 0.06, 2000))
    expected = wb_curves(v)
    tables, exact = wb.curves(v), wb.curves(v, exact=True)
    for i, p in enumerate(wb.report):
        want = expected[p.where]
        np.testing.assert_allclose(exact[:, i], want, rtol=1e-9, err_msg=p.where)
        ok = _within(tables[:, i], want, TOLERANCE, np.max(np.abs(want)))
        assert ok.all(), f"{p.where}: worst at {v[~ok][:3]}"


def test_wb_values_in_a_group(wb, numpy_target):
    """Brian2 evaluates the lookups with the right units and columns."""
    v = np.linspace(-0.11, 0.07, 181)
    group = NeuronGroup(v.size, wb.equations, namespace=wb.namespace, method="euler")
    group.v = v * volt
    expected = wb_curves(v)
    for name in ("alpha_h", "beta_h", "alpha_n", "beta_n"):
        got = getattr(group, name)[:] / hertz
        inside = np.clip(v, -0.1, 0.06)  # constant extrapolation outside the range
        ok = _within(got, wb_curves(inside)[name], TOLERANCE, np.max(np.abs(expected[name])))
        assert ok.all(), name


def test_constants_from_the_callers_scope_are_folded():
    half, slope = -30 * mV, 8 * mV  # noqa: F841 (found by tabulate in this frame)
    tab = tabulate("dn/dt = (n_inf - n)/(2*ms) : 1\nn_inf = 1/(1 + exp(-(v - half)/slope)) : 1\nv : volt")
    assert [p.where for p in tab.report] == ["n_inf"] and tab.namespace.keys() == {tab.function_name}
    v = np.linspace(-0.1, 0.06, 501)
    assert np.abs(tab.curves(v)[:, 0] - 1 / (1 + np.exp(-(v + 0.03) / 0.008))).max() < 1e-4


def test_per_neuron_parameters_stay_per_neuron():
    eqs = """
    dm/dt = (m_inf - m)/tau_m : 1
    m_inf = 1/(1 + exp(-(v - v_half)/(9*mV))) : 1
    tau_m = 0.1*ms + 2*ms/cosh((v + 40*mV)/(30*mV)) : second
    dv/dt = (gNa*m**3*(ENa - v) + g*(-65*mV - v))/Cm : volt
    v_half : volt
    gNa : siemens
    """
    tab = tabulate(eqs, namespace={"g": 0.1 * msiemens, "ENa": 50 * mV, "Cm": 1 * uF})
    # 1/tau_m where the equation divides by it, tau_m itself for monitors
    assert [(p.where, p.expression) for p in tab.report] == [
        ("dm/dt", "1/tau_m"), ("tau_m", "0.1*ms + 2*ms/cosh((v + 40*mV)/(30*mV))")]  # fmt: skip
    assert tab.equations["m"].expr.code == f"hertz*(-m + m_inf)*{tab.function_name}(v, 0)"
    assert tab.equations["m_inf"] == Equations(eqs)["m_inf"]  # v_half is per-neuron
    assert tab.equations["v"] == Equations(eqs)["v"]  # nothing costly in dv/dt
    assert {"v_half", "gNa"} <= set(tab.equations.parameter_names)


def test_expressions_of_several_state_variables_are_left_alone():
    eqs = """
    dw/dt = (w_inf - w)/(5*ms) : 1
    w_inf = exp((v - 40*mV*w)/(10*mV))/(1 + exp((v - 40*mV*w)/(10*mV))) : 1
    dca/dt = -k_ca*ca*exp(-v/(25*mV)) : mM
    k_ca = 1/(2*ms + 3*ms*ca/mM) : Hz
    x = 1/(1 + exp(-v/(10*mV))) : 1
    v : volt
    """
    tab = tabulate(eqs)
    original = Equations(eqs)
    assert [p.where for p in tab.report] == ["dca/dt", "x"]
    assert tab.report[0].expression == "-exp(-v/(25*mV))"  # the factor of v alone, not ca or k_ca
    for name in ("w", "w_inf", "k_ca"):
        assert tab.equations[name] == original[name], name
    assert "ca" in tab.equations["ca"].expr.identifiers and "k_ca" in tab.equations["ca"].expr.identifiers


def test_pieces_inside_differential_equations():
    """No subexpressions: steady state, 1/tau and a cubed activation written inline."""
    eqs = """
    dn/dt = (1/(1 + exp(-(v + 30*mV)/(8*mV))) - n)/(1*ms + 4*ms*exp(-((v + 40*mV)/(20*mV))**2)) : 1
    dv/dt = (gNa*(1/(1 + exp(-(v + 40*mV)/(9*mV))))**3*(ENa - v) + gK*n**4*(EK - v))/Cm : volt
    """
    tab = tabulate(eqs, namespace={"gNa": 35 * msiemens, "gK": 9 * msiemens, "ENa": 55 * mV, "EK": -90 * mV,
                                   "Cm": 1 * uF})  # fmt: skip
    assert [(p.where, p.whole, p.unit) for p in tab.report] == [
        ("dn/dt", False, "1"), ("dn/dt", False, "hertz"), ("dv/dt", False, "1")]  # fmt: skip
    name = tab.function_name
    assert tab.equations["v"].expr.code.count(f"{name}(v, 2)**3") == 1  # the cube at run time
    v = np.linspace(-0.1, 0.06, 1601)
    n_inf, rate = 1 / (1 + np.exp(-(v + 0.03) / 0.008)), 1 / (1e-3 + 4e-3 * np.exp(-(((v + 0.04) / 0.02) ** 2)))
    expected = np.column_stack([n_inf, rate, 1 / (1 + np.exp(-(v + 0.04) / 0.009))])
    np.testing.assert_allclose(tab.curves(v, exact=True), expected, rtol=1e-12)
    assert np.all(_within(tab.curves(v), expected, TOLERANCE, expected.max(axis=0)))


def test_one_column_per_distinct_curve():
    eqs = """
    dm/dt = (a - m)*b : 1
    dh/dt = (a - h)*b/2 : 1
    a = 1/(1 + exp(-v/(5*mV))) : 1
    b = 1/(1*ms + exp(v/(20*mV))*ms) : Hz
    v : volt
    """
    tab = tabulate(eqs)
    assert [p.where for p in tab.report] == ["a", "b"]


def test_switch_points_are_grid_nodes():
    eqs = "tau = (1*ms + 4*ms*exp(v/(20*mV)))*int(v < -40*mV) + 2*ms*exp(-v/(50*mV))*int(v >= -40*mV) : second"
    tab = tabulate(eqs + "\nv : volt")
    assert tab.tables.breakpoints == pytest.approx((-0.04,), abs=1e-12)
    assert tab.max_error <= 1e-5


def test_exponential_euler_on_tabulated_gates(numpy_target):
    eqs = """
    dn/dt = (n_inf - n)/tau_n : 1
    n_inf = 1/(1 + exp(-(v + 30*mV)/(8*mV))) : 1
    tau_n = 1*ms + 4*ms*exp(-((v + 40*mV)/(20*mV))**2) : second
    v : volt
    """
    tab = tabulate(eqs)
    exact = NeuronGroup(5, eqs, method="exponential_euler")
    table = NeuronGroup(5, tab.equations, namespace=tab.namespace, method="exponential_euler")
    for group in (exact, table):
        group.v = [-80, -50, -30, 0, 40] * mV
    Network(exact, table).run(3 * ms)
    np.testing.assert_allclose(table.n[:], exact.n[:], atol=1e-4)


# --- errors -----------------------------------------------------------------------------------


def test_nothing_to_tabulate():
    with pytest.raises(ModelError, match="nothing to tabulate.*'v'"):
        tabulate("dv/dt = (I - g*v)/C : volt\nI : amp\ng : siemens\nC : farad")
    with pytest.raises(ModelError, match="not resolved.*E_half"):
        tabulate("dv/dt = -v/tau : volt\ntau = 1*ms + exp(v/E_half)*ms : second")


def test_a_table_with_nan_is_refused():
    with pytest.raises(TableError, match=r"not finite at v = -100 mV.*narrow the range"):
        tabulate("x = log(v/mV + 50) : 1\nv : volt")


def test_range_needs_units():
    eqs = "x = exp(v/(10*mV)) : 1\nv : volt"
    with pytest.raises(UnitError, match="has no unit: 'v' is in volt"):
        tabulate(eqs, range=(-100, 60))
    with pytest.raises(UnitError, match="not in the unit of 'v'"):
        tabulate(eqs, range=(-100 * ms, 60 * ms))
    with pytest.raises(UnitError, match="finite and increasing"):
        tabulate(eqs, range=(60 * mV, -100 * mV))


def test_variable_must_be_a_state_or_parameter():
    with pytest.raises(ModelError, match="variable 'V' must be .*they define v, x"):
        tabulate("x = exp(v/(10*mV)) : 1\nv : volt", variable="V")
    with pytest.raises(ModelError, match="equations must be brian2.Equations or their text, got int"):
        tabulate(3)


def test_other_variables_and_ranges():
    tab = tabulate("dc/dt = -c/tau : mM\ntau = 10*ms/(1 + (c/(2*mM))**2) : second", variable="c",
                   range=(0 * mM, 10 * mM))  # fmt: skip
    assert tab.report[0].where == "tau" and tab.grid.v_min == 0 and tab.grid.v_max == pytest.approx(10)  # mol/m**3


@pytest.mark.filterwarnings("ignore::nml2lut.tables.GridWarning")  # 1 mV is coarse for the tolerance
def test_removable_singularity_on_a_node_is_repaired():
    with pytest.warns(SingularityWarning, match="-35 mV"):
        tab = tabulate(WB, namespace=PARAMS, n_points=161)  # 1 mV step: -35 mV is a node
    v = np.array([-0.035])
    assert np.isfinite(tab.curves(v)).all()


# --- simulations ------------------------------------------------------------------------------


def _wb_network(tab: Tabulated, currents):
    """Exact and tabulated WB cells side by side, uncoupled, each driven by its own current."""
    groups, monitors = [], []
    for name, eqs, namespace in (("exact", WB, PARAMS), ("table", tab.equations, {**PARAMS, **tab.namespace})):
        group = NeuronGroup(len(currents), eqs, namespace=namespace, method="euler", threshold="v > -20*mV",
                            refractory="v > -20*mV", name=f"wb_{name}")  # fmt: skip
        group.v, group.h, group.n, group.phi, group.I = -64 * mV, 0.78, 0.09, 5, currents
        groups.append(group)
        monitors.append(SpikeMonitor(group, name=f"spikes_{name}"))
    return Network(*groups, *monitors), monitors


def _check_spikes(monitors, n, duration):
    """Every spike (but in the last 0.2 ms, whose partner may fall after the end) has a partner within 0.2 ms."""
    exact, table = (m.spike_trains() for m in monitors)
    for k in range(n):
        x, y = exact[k] / second, table[k] / second
        assert x.size >= 2, f"cell {k} fired {x.size} times"
        for t, partners in ((x, y), (y, x)):
            t = t[t < duration - TOLERANCE_SPIKE]
            distance = np.min(np.abs(t[:, None] - partners[None, :]), axis=1)
            assert np.all(distance < TOLERANCE_SPIKE), f"cell {k}: {t[distance >= TOLERANCE_SPIKE]}"


def test_spike_times_numpy(wb, numpy_target):
    defaultclock.dt = 0.025 * ms  # numpy pays per step: 200 ms in 8000 steps
    try:
        net, monitors = _wb_network(wb, CURRENTS)
        net.run(200 * ms)
    finally:
        defaultclock.dt = 0.1 * ms
    _check_spikes(monitors, len(CURRENTS), 0.2)


@pytest.mark.cython
def test_spike_times_and_lookup_function_cython(wb, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    previous = prefs.codegen.target
    prefs.codegen.target = "cython"
    try:
        defaultclock.dt = 0.01 * ms
        net, monitors = _wb_network(wb, CURRENTS)
        probe, probe_monitor, expected = _lookup_probe()
        net.add(probe, probe_monitor)
        net.run(300 * ms)
        _check_spikes(monitors, len(CURRENTS), 0.3)
        _check_lookup_probe(probe_monitor, expected)
    finally:
        prefs.codegen.target = previous
        defaultclock.dt = 0.1 * ms
    assert list(tmp_path.iterdir()) == []


@pytest.mark.cpp_standalone
def test_spike_times_and_lookup_function_cpp_standalone(wb, standalone_device, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    brian2.defaultclock.dt = 0.01 * ms
    net, monitors = _wb_network(wb, CURRENTS)
    probe, probe_monitor, expected = _lookup_probe()
    net.add(probe, probe_monitor)
    try:
        net.run(1 * second)
    finally:
        brian2.defaultclock.dt = 0.1 * ms
    _check_spikes(monitors, len(CURRENTS), 1.0)
    _check_lookup_probe(probe_monitor, expected)
    assert [p.name for p in tmp_path.iterdir()] == [standalone_device.name]


# --- lookup_function --------------------------------------------------------------------------

_X = np.linspace(-80, 40, 13)  # mV
_CURVES = np.column_stack([np.tanh(_X / 30), 1 + (_X / 40) ** 2])


def test_lookup_function_one_curve_with_units():
    tau = lookup_function((1 + (_X / 40) ** 2) * ms, -80 * mV, 40 * mV)
    assert float(tau(-20 * mV) / ms) == pytest.approx(1.25)
    assert float(tau(-15 * mV) / ms) == pytest.approx((1.25 + 1 + 1 / 16) / 2)
    assert float(tau(-200 * mV) / ms) == pytest.approx(5.0)  # the edge value outside
    assert tau.name.startswith("lut_")


def test_lookup_function_several_curves():
    lut = lookup_function(_CURVES, -80 * mV, 40 * mV, name="lut_pair")
    x = np.array([-75.0, -1.0, 33.3])
    for k in range(2):
        np.testing.assert_allclose(lut(x * mV, k), np.interp(x, _X, _CURVES[:, k]), rtol=1e-12)


def test_lookup_function_names_are_unique_per_table():
    a = lookup_function(_CURVES, -80 * mV, 40 * mV)
    b = lookup_function(_CURVES * 2, -80 * mV, 40 * mV)
    c = lookup_function(_CURVES, -80, 40)  # the argument as a number (lut4brian's v/mV)
    assert len({a.name, b.name, c.name}) == 3
    assert a.name == lookup_function(_CURVES, -80 * mV, 40 * mV).name


def test_lookup_function_errors():
    with pytest.raises(UnitError, match="same unit"):
        lookup_function(_CURVES, -80 * mV, 40)
    with pytest.raises(TableError, match="not finite"):
        lookup_function(np.array([0.0, np.nan, 1.0]), -80 * mV, 40 * mV)
    with pytest.raises(TableError, match="not valid"):
        lookup_function(_CURVES, -80 * mV, 40 * mV, name="2fast")
    with pytest.raises(TableError, match="empty"):
        lookup_function(_CURVES, 40 * mV, -80 * mV)


def _lookup_probe():
    """A group reading both kinds of lookup Function at voltages on, between and beyond the grid."""
    tau = lookup_function((1 + (_X / 40) ** 2) * ms, -80 * mV, 40 * mV, name="tau_probe")
    pair = lookup_function(_CURVES, -80 * mV, 40 * mV, name="pair_probe")
    x = np.concatenate([_X, _X[:-1] + 3.7, [-100.0, 100.0]])
    eqs = "v : volt\ntau = tau_probe(v) : second\ny0 = pair_probe(v, 0) : 1\ny1 = pair_probe(v, 1) : 1"
    group = NeuronGroup(x.size, eqs, namespace={"tau_probe": tau, "pair_probe": pair}, name="lookup_probe")
    group.v = x * mV
    monitor = brian2.StateMonitor(group, ["tau", "y0", "y1"], record=True, when="start", name="lookup_probe_mon")
    inside = np.clip(x, -80, 40)
    expected = {"tau": np.interp(inside, _X, _CURVES[:, 1]) * 1e-3,
                "y0": np.interp(inside, _X, _CURVES[:, 0]), "y1": np.interp(inside, _X, _CURVES[:, 1])}  # fmt: skip
    return group, monitor, expected


def _check_lookup_probe(monitor, expected):
    for name, want in expected.items():
        got = np.asarray(getattr(monitor, name)[:, 0])
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=name)


def test_lookup_function_in_a_group_numpy(numpy_target, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    group, monitor, expected = _lookup_probe()
    Network(group, monitor).run(0.1 * ms)
    _check_lookup_probe(monitor, expected)
    assert list(tmp_path.iterdir()) == []


def test_no_warning_for_a_clean_model():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tabulate("x = 1/(1 + exp(-v/(7*mV))) : 1\nv : volt")


def test_exp_is_brian2s():
    assert exp is brian2.exp  # the tests' closed forms use numpy, the models Brian2
