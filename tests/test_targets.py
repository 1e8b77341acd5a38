"""Whole loaded channels in numpy, Cython and cpp_standalone: curves, `init`, and trajectories agree.

One NeuronGroup holds six example channels twice, in ``lut`` and in ``exact`` mode
(``Na_lut``, ``Na_exact``...), so that each compiled target builds once.  The run:

1. ``v`` := ``v_init``: 200 voltages from -110 to +70 mV (outside the default table range,
   grid points of every table, the removable singularities and switches of the rates);
2. ``channel.init(group)`` for every channel (string expressions of ``v``);
3. ``v`` := ``v_run``, the same voltages reversed, so that the gates relax, and so that an
   `init` evaluated late (at the run instead of at the call) would be caught;
4. a few steps of exponential Euler.  At t=0 one ``run_regularly`` operation copies every
   curve subexpression (inf, tau, instantaneous gates) and open fraction into a parameter
   ``rec_<name>``; one StateMonitor records every state at every step.

Checks: the curves at t=0 equal `LoadedChannel.curves(v_run)`; the states at t=0 equal the
steady states at ``v_init``; the trajectories equal ``inf + (x0 - inf) exp(-t/tau)``
(exponential Euler is exact for a fixed ``v``); Cython and cpp_standalone reproduce the numpy run.

Why the copies instead of recording the subexpressions: Brian2's Cython StateMonitor template
repeats the whole vector code (every subexpression it needs) once per recorded variable, so
recording all 68 variables of this group directly is 1.5 MB of Cython (0.76 MB with copies
recorded) and takes minutes to compile.  With 18 states recorded it is small.
"""

from __future__ import annotations

from pathlib import Path

import brian2
import numpy as np
import pytest
from brian2 import Equations, Network, NeuronGroup, StateMonitor, ms, prefs, volt
from brian2.core.base import BrianObjectException
from brian2.devices.device import RuntimeDevice

from nml2lut.channel import LoadedChannel, load_channel
from nml2lut.lookup import WHERE_FUNCTION_NAME

EXAMPLES = Path(__file__).resolve().parents[1] / "example_channels"

#: (file stem = channel id, Brian2 name stem, temperature)
CHANNELS = [
    ("hh_na", "Na", "6.3degC"),
    ("hh_k", "K", "6.3degC"),
    ("frac_ih", "Ih", "30degC"),  # q10 on a fractional gate, away from its 36 degC reference
    ("inst_nap", "NaP", None),  # an instantaneous gate
    ("custom_kdr", "Kdr", None),  # ConditionalDerivedVariable: nml2lut_where in exact mode
    ("q10_ka", "KA", "30degC"),  # q10ExpTemp, q10Fixed, conductance scaling, a voltage switch
]
MODES = ("lut", "exact")
N_NEURONS = 200
DT = 0.1 * ms
N_STEPS = 5

# Tables against the numpy interpolation of the same tables: only rounding differs.
RTOL_LUT = 1e-12
# C's exp/cosh/exprel against numpy's, and Brian2's sympy-rewritten update: a few ulp.
RTOL_EXACT = 1e-9
# Target against target, -O3 -ffast-math included.
RTOL_TARGETS = 1e-9
# States are fractions in [0, 1]: below this, a difference is the rounding of O(1) terms.
ATOL_STATE = 1e-14

# Voltages (V): both ends of the default table range and beyond, the removable singularities
# of HHExpLinearRate (hh_na -40 mV, hh_k -55 mV) and of custom_kdr's Case (-48 mV), q10_ka's
# tau switch (-63 mV), 0 V.
SPECIAL = [-0.11, -0.1001, -0.1, -0.063, -0.055, -0.048, -0.04, 0.0, 0.06, 0.0601, 0.07]
GRID_POINTS_PER_TABLE = 12
# custom_kdr's alpha: here its Case x == 0 replaces 160*x/(exp(x) - 1) by the limit, 160/s.
KDR_GUARDED = -0.048


def _load(mode: str) -> dict[str, LoadedChannel]:
    return {
        f"{stem}_{mode}": load_channel(
            EXAMPLES / f"{file}.channel.nml", file, name=f"{stem}_{mode}", temperature=temperature, mode=mode
        )
        for file, stem, temperature in CHANNELS
    }


def _load_all() -> dict[str, LoadedChannel]:
    return {**_load("lut"), **_load("exact")}


def _voltages(channels: dict[str, LoadedChannel]) -> np.ndarray:
    """``N_NEURONS`` sorted voltages: the special ones, grid points of every table, an irregular fill."""
    grid_points = []
    for channel in channels.values():
        if channel.grid is not None:
            x = np.linspace(channel.grid.v_min, channel.grid.v_max, channel.grid.n)
            grid_points.append(x[np.linspace(0, channel.grid.n - 1, GRID_POINTS_PER_TABLE).round().astype(int)])
    fixed = np.concatenate([SPECIAL, *grid_points])
    fill = np.linspace(-0.11, 0.07, N_NEURONS - len(fixed) + 2)[1:-1] + 1.234567e-5  # on no grid
    v = np.sort(np.concatenate([fixed, fill]))
    assert v.shape == (N_NEURONS,) and v.min() == -0.11 and v.max() == 0.07
    return v


def _curve_names(channel: LoadedChannel) -> dict[str, str]:
    """Subexpressions to copy (inf, tau, instantaneous gates, open fraction) -> their unit."""
    units = {name: ("second" if key.endswith(".tau") else "1") for key, name in channel.code.names.items()}
    return {**units, f"fopen_{channel.name}": "1"}


def _simulate(channels: dict[str, LoadedChannel], v_init: np.ndarray, v_run: np.ndarray) -> dict[str, np.ndarray]:
    """Build, init and run the group in the current target (or device).

    Returns every state, unitless, shape (neuron, step), and every curve at t=0, shape (neuron,).
    """
    curves = {name: unit for channel in channels.values() for name, unit in _curve_names(channel).items()}
    states = [state for channel in channels.values() for state in channel.code.initial]
    equations = Equations("v : volt")
    namespace: dict = {}
    for channel in channels.values():
        equations += channel.equations
        for key, value in channel.namespace.items():
            assert namespace.setdefault(key, value) is value, f"two objects under the name {key!r}"
    equations += Equations("\n".join(f"rec_{name} : {unit}" for name, unit in curves.items()))
    # Fixed object names: the generated code is then the same in every session (Cython cache hits).
    group = NeuronGroup(N_NEURONS, equations, namespace=namespace, method="exponential_euler", dt=DT, name="targets")
    group.v = v_init * volt
    for channel in channels.values():
        channel.init(group)
    group.v = v_run * volt
    copy = group.run_regularly(  # once, at t=0, before the state update
        "\n".join(f"rec_{name} = {name}" for name in curves), dt=N_STEPS * DT, when="start", name="targets_copy"
    )
    monitor = StateMonitor(group, states, record=True, dt=DT, name="targets_monitor")
    Network(group, copy, monitor).run(N_STEPS * DT)
    result = {name: np.array(getattr(monitor, f"{name}_")) for name in states}
    result.update({name: np.array(getattr(group, f"rec_{name}_")[:]) for name in curves})
    return result


def _relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max(|a|, |b|), 0 where both are 0."""
    scale = np.maximum(np.abs(a), np.abs(b))
    diff = np.abs(a - b)
    return float(np.max(np.divide(diff, scale, out=np.zeros_like(diff), where=scale > 0)))


def _check_against_curves(channels, recorded, v_init, v_run) -> None:
    """Curves at t=0, states after `init`, and the closed-form relaxation, in any target."""
    t = np.arange(N_STEPS) * float(DT)
    for label, channel in channels.items():
        rtol = RTOL_LUT if channel.mode == "lut" else RTOL_EXACT
        at_run, at_init = channel.curves(v_run), channel.curves(v_init)
        for key, name in channel.code.names.items():
            curve, _, quantity = key.rpartition(".")
            np.testing.assert_allclose(
                recorded[name], at_run[curve][quantity], rtol=rtol, atol=0, err_msg=f"{label}: {name} at t=0"
            )
        inverse = {name: key for key, name in channel.code.names.items()}
        for state, inf_name in channel.code.initial.items():
            curve = inverse[inf_name].rpartition(".")[0]
            x0 = at_init[curve]["inf"]
            np.testing.assert_allclose(recorded[state][:, 0], x0, rtol=rtol, atol=0, err_msg=f"{label}: {state} init")
            inf, tau = at_run[curve]["inf"][:, None], at_run[curve]["tau"][:, None]
            expected = inf + (x0[:, None] - inf) * np.exp(-t / tau)
            np.testing.assert_allclose(
                recorded[state], expected, rtol=RTOL_EXACT, atol=ATOL_STATE, err_msg=f"{label}: {state} over time"
            )
            assert not np.allclose(recorded[state][:, -1], x0), f"{label}: {state} did not move"


def _check_parity(reference: dict, recorded: dict, target: str, neurons=slice(None)) -> dict[str, float]:
    """Every recorded value agrees with the numpy run; returns the largest relative difference per mode."""
    assert recorded.keys() == reference.keys()
    worst = dict.fromkeys(MODES, 0.0)
    for name, want in reference.items():
        got = recorded[name]
        assert got.shape == want.shape and got.shape[0] == N_NEURONS, name
        assert np.isfinite(got).all(), f"{target}: {name} is not finite"
        got, want = got[neurons], want[neurons]
        np.testing.assert_allclose(got, want, rtol=RTOL_TARGETS, atol=0, err_msg=f"{target} vs numpy: {name}")
        mode = "lut" if name.endswith("_lut") else "exact"
        worst[mode] = max(worst[mode], _relative_difference(got, want))
    print(f"\n{target} vs numpy, largest relative difference: {worst}")
    return worst


def _run_in(target: str, channels, v_init, v_run) -> dict[str, np.ndarray]:
    previous = prefs.codegen.target
    prefs.codegen.target = target
    try:
        # nml2lut_where evaluates both branches: custom_kdr's x/(exp(x) - 1) is 0/0 at
        # x = 0 (-48 mV) in the branch the Case discards (results are checked finite).
        with np.errstate(divide="ignore", invalid="ignore"):
            return _simulate(channels, v_init, v_run)
    finally:
        prefs.codegen.target = previous


@pytest.fixture(scope="module")
def reference():
    """The numpy run (runtime device), shared by the compiled targets: channels, voltages, results."""
    assert isinstance(brian2.get_device(), RuntimeDevice)
    channels = _load_all()
    v_init = _voltages(channels)
    v_run = v_init[::-1].copy()
    return channels, v_init, v_run, _run_in("numpy", channels, v_init, v_run)


def test_numpy_curves_init_and_dynamics(reference):
    channels, v_init, v_run, recorded = reference
    # The probe covers what it claims to.
    assert (v_init < -0.1).sum() >= 2 and (v_init > 0.06).sum() >= 2
    assert {-0.04, -0.048, -0.055, -0.063} <= set(v_init.tolist())
    assert sum(ch.grid is not None for ch in channels.values()) == len(CHANNELS)
    assert WHERE_FUNCTION_NAME in channels["Kdr_exact"].namespace
    assert WHERE_FUNCTION_NAME in channels["KA_exact"].namespace
    _check_against_curves(channels, recorded, v_init, v_run)
    for name, values in recorded.items():
        assert np.isfinite(values).all(), name


@pytest.mark.cython
def test_cython_matches_numpy_and_writes_nothing_to_cwd(reference, tmp_path, monkeypatch):
    """Cython, with the channels loaded for the numpy run (Functions are target-independent).

    -48 mV is replaced: see `test_cython_exact_case_guarding_a_division`.
    """
    channels, v_init, v_run, want = reference
    monkeypatch.chdir(tmp_path)
    avoid = (v_init == KDR_GUARDED) | (v_run == KDR_GUARDED)
    assert avoid.sum() == 2
    v_init_c, v_run_c = np.where(avoid, -0.0475, v_init), np.where(avoid, -0.0475, v_run)
    recorded = _run_in("cython", channels, v_init_c, v_run_c)
    _check_against_curves(channels, recorded, v_init_c, v_run_c)
    _check_parity(want, recorded, "cython", neurons=~avoid)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.cython
def test_cython_exact_case_guarding_a_division(reference):
    """The Cython run at the numpy run's voltages, -48 mV included, where custom_kdr's Case guards 0/0.

    Both branches of a case are computed; divisions inside them use IEEE
    semantics (nml2lut_divide), so Cython's Python-style division cannot raise.
    """
    channels, v_init, v_run, want = reference
    recorded = _run_in("cython", channels, v_init, v_run)
    _check_against_curves(channels, recorded, v_init, v_run)
    _check_parity(want, recorded, "cython")


@pytest.mark.cpp_standalone
def test_cpp_standalone_matches_numpy_and_writes_only_its_directory(
    reference, standalone_device, tmp_path, monkeypatch
):
    """Channels loaded after the device is set, as in a user's script; nothing is read before the run."""
    _, v_init, v_run, want = reference
    monkeypatch.chdir(tmp_path)
    channels = _load_all()
    np.testing.assert_array_equal(_voltages(channels), v_init)  # loading is deterministic
    recorded = _simulate(channels, v_init, v_run)
    _check_against_curves(channels, recorded, v_init, v_run)
    _check_parity(want, recorded, "cpp_standalone")
    assert [p.name for p in tmp_path.iterdir()] == [standalone_device.name]
    static = {p.name for p in (standalone_device / "static_arrays").iterdir()}
    lut_names = {name for channel in channels.values() for name in channel.namespace if name.startswith("lut_")}
    assert len(lut_names) == len(CHANNELS)
    # one array per table and time step (the gate-step columns are made for the group's dt)
    for name in lut_names:
        assert any(s.startswith(f"nml2lut_values_{name}_dt") for s in static), (name, static)


# --- names of the generated functions -----------------------------------------------------------


def _function_names(channel: LoadedChannel) -> set[str]:
    return {name for name in channel.namespace if name != WHERE_FUNCTION_NAME}


def test_same_file_under_two_names_coexists_in_one_group():
    path = EXAMPLES / "hh_na.channel.nml"
    first = load_channel(path, name="Na1", temperature="6.3degC")
    second = load_channel(path, name="Na2", temperature="6.3degC")
    (name1,), (name2,) = _function_names(first), _function_names(second)
    assert name1 != name2
    kdr_path = EXAMPLES / "custom_kdr.channel.nml"
    kdr1, kdr2 = (load_channel(kdr_path, "custom_kdr", name=n, mode="exact") for n in ("Kdr1", "Kdr2"))
    assert kdr1.namespace[WHERE_FUNCTION_NAME] is kdr2.namespace[WHERE_FUNCTION_NAME]

    volts = np.linspace(-0.11, 0.07, 37)
    channels = (first, second, kdr1, kdr2)
    previous = prefs.codegen.target
    prefs.codegen.target = "numpy"
    try:
        group = NeuronGroup(
            len(volts),
            sum((ch.equations for ch in channels), Equations("v : volt")),
            namespace={key: value for ch in channels for key, value in ch.namespace.items()},
            method="exponential_euler",
        )
        group.v = volts * volt
        for channel in channels:
            channel.init(group)
        np.testing.assert_allclose(group.m_Na1[:], first.curves(volts)["m"]["inf"], rtol=RTOL_LUT)
        np.testing.assert_allclose(group.n_Kdr1[:], kdr1.curves(volts)["n"]["inf"], rtol=RTOL_EXACT)
        group.v = volts[::-1] * volt
        with np.errstate(divide="ignore", invalid="ignore"):
            Network(group).run(DT)  # the state updater uses both tables
        for a, b in (("m_Na1", "m_Na2"), ("h_Na1", "h_Na2"), ("h_tau_Na1", "h_tau_Na2"), ("n_Kdr1", "n_Kdr2")):
            np.testing.assert_array_equal(getattr(group, f"{a}_")[:], getattr(group, f"{b}_")[:])
        assert not np.allclose(group.m_Na1[:], first.curves(volts)["m"]["inf"])
    finally:
        prefs.codegen.target = previous


def test_function_names_are_deterministic():
    path = EXAMPLES / "hh_na.channel.nml"
    once = load_channel(path, name="Na", temperature="6.3degC")
    again = load_channel(path, name="Na", temperature="6.3degC")
    assert _function_names(once) == _function_names(again)
    assert str(once.equations) == str(again.equations)
    # Other tables under the same channel name get another function name.
    warmer = load_channel(path, name="Na", temperature="20degC")
    assert _function_names(warmer).isdisjoint(_function_names(once))
    assert all(name.startswith("lut_Na_") for name in _function_names(once) | _function_names(warmer))
