"""nml2lut's state updater (`nml2lut.METHOD`): tabulated exponential-Euler gate steps.

Checks: the method is registered; it finds the gates nml2lut emits and nothing else; the
step columns are ``a = exp(-dt/tau)``, ``b = inf*(1 - a)`` of the table's inf and tau for the
group's dt (rebuilt for another dt); one step of a gate at a clamped voltage equals the
exact exponential step of the interpolated curves; a spiking cell matches Brian2's
``exponential_euler`` on the same tables; Cython and cpp_standalone reproduce numpy.
"""

from __future__ import annotations

from pathlib import Path

import brian2
import numpy as np
import pytest
from brian2 import Equations, Network, NeuronGroup, SpikeMonitor, StateUpdateMethod, cm, mS, ms, mV, prefs, uA, uF

import nml2lut
from nml2lut import stepper
from nml2lut.errors import Nml2LutError, TableError
from nml2lut.gatestep import step_columns, step_errors, step_table
from nml2lut.lookup import LookupFunction, LookupTable, make_lookup_function

EXAMPLES = Path(__file__).resolve().parents[1] / "example_channels"
DT = 0.025 * ms


def _hh(**kwargs):
    na = nml2lut.load_channel(EXAMPLES / "hh_na.channel.nml", name="Na", temperature="6.3degC", **kwargs)
    k = nml2lut.load_channel(EXAMPLES / "hh_k.channel.nml", name="K", temperature="6.3degC", **kwargs)
    leak = nml2lut.load_channel(EXAMPLES / "hh_leak.channel.nml", name="L")
    return na, k, leak


def _group(channels, n=3, method=nml2lut.METHOD, clamp=False, dt=DT):
    membrane = "dv/dt = 0*volt/second : volt" if clamp else "dv/dt = (I_app - I_Na - I_K - I_L)/Cm : volt"
    eqs = Equations(membrane + "\nI_app : amp/meter**2")
    namespace = {"Cm": 1 * uF / cm**2}
    for channel in channels:
        eqs += channel.equations
        namespace.update(channel.namespace)
    group = NeuronGroup(n, eqs, method=method, namespace=namespace, threshold="v > 0*mV", refractory="v > 0*mV",
                        dt=dt)  # fmt: skip
    group.g_Na, group.g_K, group.g_L = 120 * mS / cm**2, 36 * mS / cm**2, 0.3 * mS / cm**2
    group.E_Na, group.E_K, group.E_L = 50 * mV, -77 * mV, -54.387 * mV
    return group


def _abstract_code(channels) -> str:
    group = _group(channels)
    variables = group.resolve_all(group.equations.identifiers | group.equations.names, {}, user_identifiers=set())
    return stepper.TabulatedExponentialEuler()(group.equations, variables)


# --- registration and recognition --------------------------------------------------------------


def test_method_is_registered_under_its_name():
    assert nml2lut.METHOD == stepper.METHOD_NAME == "nml2lut_exponential_euler"
    assert isinstance(StateUpdateMethod.stateupdaters[nml2lut.METHOD], stepper.TabulatedExponentialEuler)
    stepper.register()  # a second registration is harmless


def test_gates_are_stepped_by_their_table_and_v_by_exponential_euler():
    code = _abstract_code(_hh())
    lines = code.splitlines()
    na_function = next(name for name in _hh()[0].namespace if name.startswith("lut_Na"))
    assert f"_h_Na = {na_function}(v, 6)*h_Na + {na_function}(v, 7)" in lines
    assert any(line.startswith("_n_K = lut_K_") for line in lines)
    assert "exp(" not in code  # none per gate; the voltage's exponential Euler uses nml2lut's exprel:
    assert code.count("nml2lut_exprel(_A_v * dt)") == 1
    assert "_A_v = " in code and "**" not in code  # powers written as products
    # the new gate values are assigned after everything that reads the old ones
    assert lines.index("m_Na = _m_Na") > max(i for i, line in enumerate(lines) if line.startswith("_v = "))


def test_channels_without_step_columns_are_left_to_exponential_euler():
    exact = _abstract_code(_hh(mode="exact"))
    assert "_m_Na = " in exact and "lut_Na" not in exact and exact.count("exp(") > 1
    stepped = _abstract_code(_hh(gating="step", dt=DT))
    assert "_m_Na" not in stepped  # gating="step" gates are parameters with their own update


def test_without_variables_no_gate_is_recognised():
    na, *_ = _hh()
    assert stepper.find_gates(na.equations, None) == []
    assert stepper.find_gates(na.equations, {}) == []


def test_refuses_stochastic_equations_and_unknown_options():
    eqs = Equations("dx/dt = -x/(10*ms) + xi/sqrt(ms) : 1")
    with pytest.raises(stepper.UnsupportedEquationsException, match="stochastic"):
        stepper.TabulatedExponentialEuler()(eqs, {})
    with pytest.raises(KeyError):
        stepper.TabulatedExponentialEuler()(Equations("dx/dt = -x/(10*ms) : 1"), {}, {"nonsense": 1})


def test_integer_powers_become_products_and_calls_are_computed_once():
    lines = stepper._with_products(["_v = f(v, 0)**3*g*n**4 + n**2.5 + y**9"])
    assert lines == ["_nml2lut_base_0 = f(v, 0)", "_v = _nml2lut_base_0 * _nml2lut_base_0 * _nml2lut_base_0 * g * "
                     "(n * n * n * n) + n ** 2.5 + y ** 9"]  # fmt: skip


# --- the step columns ------------------------------------------------------------------------------


def _inf_tau_table():
    v = np.linspace(-0.1, 0.05, 7)
    inf = 1 / (1 + np.exp(-(v + 0.04) / 0.005))
    tau = 1e-3 + 4e-3 * np.exp(-(((v + 0.05) / 0.02) ** 2))
    return LookupTable(np.column_stack([inf, tau]), -0.1, 0.05)


def test_step_table_holds_the_exponential_euler_factors_at_the_nodes():
    table = _inf_tau_table()
    values, slopes = step_table(table.values, table.slopes, [(0, 1)], 2.5e-5)
    a = np.exp(-2.5e-5 / table.values[:, 1])
    np.testing.assert_allclose(values[:, 2], a, rtol=1e-15)
    np.testing.assert_allclose(values[:, 3], table.values[:, 0] * (1 - a), rtol=1e-15)
    np.testing.assert_allclose(values[:-1, 2] + slopes[:-1, 2], a[1:], rtol=1e-15)  # ends at the next node
    assert step_columns(2, [(0, 1)]) == {(0, 1): (2, 3)}


def test_step_table_errors_are_measured_and_small_for_a_fine_grid():
    coarse = _inf_tau_table()
    v = np.linspace(-0.1, 0.05, 601)
    fine = LookupTable(np.column_stack([np.interp(v, coarse.x, coarse.values[:, k]) for k in (0, 1)]), -0.1, 0.05)
    (err_coarse,), (err_fine,) = step_errors(coarse.values, coarse.slopes, [(0, 1)], 2.5e-5).values(), \
        step_errors(fine.values, fine.slopes, [(0, 1)], 2.5e-5).values()  # fmt: skip
    assert err_fine < 1e-3 < err_coarse


@pytest.mark.parametrize(
    ("steps", "dt", "match"),
    [([(0, 2)], 1e-5, "out of range"), ([(0, 1), (0, 1)], 1e-5, "twice"), ([(0, 1)], 0.0, "positive time step"),
     ([(1, 0)], 1e-5, "not a positive time constant")],
)  # fmt: skip
def test_step_table_errors(steps, dt, match):
    table = LookupTable(np.array([[0.5, 1e-3], [-0.5, 2e-3]]), 0.0, 1.0)
    with pytest.raises(TableError, match=match):
        step_table(table.values, table.slopes, steps, dt)
    assert issubclass(TableError, Nml2LutError)


def test_lookup_function_serves_step_columns_only_with_a_dt():
    function = make_lookup_function(_inf_tau_table(), "lut_gate", steps=((0, 1),))
    assert isinstance(function, LookupFunction) and function.step_columns(0, 1) == (2, 3)
    assert function.step_columns(1, 0) is None
    assert function.for_dt(1e-5) is function.for_dt(1e-5)  # made once per dt
    assert function.for_dt(1e-5).n_columns == 4
    with pytest.raises(TableError, match="out of range"):
        function(-50 * mV, 2)  # the Python function has no clock


def test_numpy_lookup_sees_an_array_changed_in_place():
    function = make_lookup_function(_inf_tau_table(), "lut_cache")
    lookup = function.implementations["numpy"].get_code(None)
    x = np.array([-0.1, 0.05])
    first = lookup(x, 0).copy()
    x[:] = [0.05, -0.1]
    np.testing.assert_array_equal(lookup(x, 0), first[::-1])


# --- simulations ---------------------------------------------------------------------------------------


def _one_step(target: str, dt=DT) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gates at 0, then one step at clamped voltages; returns (v, m after, h after)."""
    na, k, leak = _hh()
    group = _group((na, k, leak), n=5, clamp=True, dt=dt)
    group.v = np.array([-90, -65, -40, 0, 30]) * mV
    group.m_Na, group.h_Na, group.n_K = 0.0, 1.0, 0.0
    net = Network(group)
    net.run(dt)
    return np.asarray(group.v[:]), np.asarray(group.m_Na[:]), np.asarray(group.h_Na[:])


def _expected(v, dt, x0, gate):
    na, *_ = _hh()
    curves = na.curves(v)[gate]
    return curves["inf"] + (x0 - curves["inf"]) * np.exp(-float(dt / brian2.second) / curves["tau"])


@pytest.mark.parametrize("dt", [DT, 0.1 * ms])
def test_one_step_is_the_exponential_step_of_the_tables_for_the_groups_dt(dt):
    prefs.codegen.target = "numpy"
    v, m, h = _one_step("numpy", dt)
    np.testing.assert_allclose(m, _expected(v, dt, 0.0, "m"), rtol=0, atol=2e-5)
    np.testing.assert_allclose(h, _expected(v, dt, 1.0, "h"), rtol=0, atol=2e-5)
    assert np.abs(m - _expected(v, 2 * dt, 0.0, "m")).max() > 1e-3  # the dt matters


def test_spiking_cell_matches_exponential_euler_on_the_same_tables():
    prefs.codegen.target = "numpy"
    times = {}
    for method in (nml2lut.METHOD, "exponential_euler"):
        channels = _hh()
        group = _group(channels, n=2, method=method)
        group.v = -65 * mV
        group.I_app = [8, 20] * uA / cm**2
        for channel in channels:
            channel.init(group)
        monitor = SpikeMonitor(group)
        Network(group, monitor).run(30 * ms)
        times[method] = [np.asarray(monitor.spike_trains()[i] / ms) for i in range(2)]
    for ours, theirs in zip(times[nml2lut.METHOD], times["exponential_euler"], strict=True):
        assert ours.size == theirs.size >= 2
        np.testing.assert_allclose(ours, theirs, atol=0.026)  # at most one step apart


@pytest.mark.cython
def test_cython_reproduces_numpy():
    prefs.codegen.target = "numpy"
    want = _one_step("numpy")
    prefs.codegen.target = "cython"
    try:
        got = _one_step("cython")
    finally:
        prefs.codegen.target = "numpy"
    for a, b in zip(want, got, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-15)


@pytest.fixture
def numpy_one_step():
    prefs.codegen.target = "numpy"
    return _one_step("numpy")


@pytest.mark.cpp_standalone
def test_cpp_standalone_reproduces_numpy(numpy_one_step, standalone_device):
    got = _one_step("cpp_standalone")
    for a, b in zip(numpy_one_step, got, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-15)
