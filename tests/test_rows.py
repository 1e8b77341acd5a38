"""One array for the tables of several lookup functions on one grid (`nml2lut.rows`).

Checks: the shared array holds every function's (value, slope) columns at the places its
generated code names, gate-step columns included for the reader's dt, the columns a
stepping loop reads first; functions on other grids, repeated or
not 1-D lookup functions are refused; `share_grid` hands the channels of one grid copies
that read one array (same names, originals untouched); in cpp_standalone the copies
give the values of the numpy implementation (up to rounding) (between nodes, on nodes, outside
the range, NaN), and a group of shared channels integrated by ``nml2lut.METHOD`` follows
the numpy run, from one static array and none of the functions' own.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from brian2 import Equations, NeuronGroup, StateMonitor, ms, mV, run, start_scope

import nml2lut
from nml2lut.errors import TableError
from nml2lut.lookup import (
    LookupTable,
    LookupTable2D,
    interpolate,
    make_lookup_function,
    make_lookup_function_2d,
    table_for,
)
from nml2lut.rows import share_rows

EXAMPLES = Path(__file__).resolve().parents[1] / "example_channels"
GRID = (-0.1, 0.06, 161)


def _functions():
    rng = np.random.default_rng(7)
    x_min, x_max, n = GRID
    one = make_lookup_function(LookupTable(rng.random((n, 3)), x_min, x_max), "lut_one")
    # columns 0 and 1 are an inf and a tau curve (positive): the gate step appends a and b for a given dt
    stepped = LookupTable(np.column_stack([rng.random(n), 1e-3 + 1e-3 * rng.random(n)]), x_min, x_max)
    two = make_lookup_function(stepped, "lut_two", steps=((0, 1),))
    return one, two


def _owner(dt: float | None):
    return SimpleNamespace(clock=SimpleNamespace(dt_=dt)) if dt is not None else SimpleNamespace()


def _holder(function):
    (holder,) = function.implementations["cpp"].dependencies.values()
    return holder.implementations["cpp"]


def _places(function, owner) -> list[int]:
    """The places of the function's columns in a shared row, as its generated C++ code declares them."""
    code = function.implementations["cpp"].get_code(owner)
    match = re.search(r"static const int nml2lut_places_\w+\[\] = \{([0-9, ]+)\};", code)
    assert match, code
    return [int(p) for p in match.group(1).split(",")]


@pytest.mark.parametrize("dt", [None, 25e-6, 1e-4])
def test_shared_array_holds_each_functions_columns_at_their_places(dt):
    originals = _functions()
    shared = share_rows(originals)
    owner = _owner(dt)
    holder = _holder(shared[0])
    assert _holder(shared[1]) is holder  # one array for both
    ((key, array),) = holder.get_namespace(owner).items()
    n = GRID[2]
    rows = array.reshape(n, -1)
    tables = [table_for(f, owner) for f in originals]
    places = [_places(f, owner) for f in shared]
    assert sorted(p for ps in places for p in ps) == list(range(0, rows.shape[1], 2))  # each pair once, no gap
    for table, columns in zip(tables, places, strict=True):
        for k, place in enumerate(columns):
            np.testing.assert_array_equal(rows[:, place], table.values[:, k])
            np.testing.assert_array_equal(rows[:, place + 1], table.slopes[:, k])
    if dt is not None:
        assert tables[1].n_columns == 4  # inf, tau, then the step columns a and b for this dt
        assert key.endswith(f"_dt{nml2lut.lookup._digest(dt)}")
        # the columns a loop stepping the gate reads come first, the inf and tau it replaces last
        assert places[1][0] >= rows.shape[1] - 4 and places[1][1] >= rows.shape[1] - 4
        assert max(places[0]) < min(places[1][0], places[1][1])
    # the copies keep names, tables and steps, and their numpy code is the originals'
    for original, copy in zip(originals, shared, strict=True):
        assert copy.pyfunc.__name__ == original.pyfunc.__name__ and copy.steps == original.steps
        assert copy.table is original.table and copy is not original
        assert original.implementations["cpp"].dependencies == {}  # the originals are not changed


def test_share_rows_refuses_other_grids_repeats_and_other_functions():
    one, two = _functions()
    coarse = make_lookup_function(LookupTable(np.zeros((11, 1)), -0.1, 0.06), "lut_coarse")
    with pytest.raises(TableError, match="not on one grid"):
        share_rows([one, coarse])
    with pytest.raises(TableError, match="given twice"):
        share_rows([one, two, one])
    flat = LookupTable2D(np.zeros((3, 3, 1)), -0.1, 0.06, 1e-6, 1e-3)
    with pytest.raises(TableError, match="1-D lookup functions"):
        share_rows([one, make_lookup_function_2d(flat, "lut_flat")])


def test_share_grid_gives_the_channels_of_one_grid_one_array():
    own = nml2lut.load_channels(EXAMPLES / "q10_ka.channel.nml", temperature="36degC", share=False)
    shared = nml2lut.share_grid(own)  # rebuilt on one grid, then one array
    functions = [_lookup(c) for c in shared]
    assert _holder(functions[0]) is _holder(functions[1])
    assert all(_holder(f) is not None for f in functions)
    # channels already on one grid: copies under the same names, the given channels untouched
    again = nml2lut.share_grid(shared)
    for before, after in zip(shared, again, strict=True):
        assert after is not before and set(after.namespace) == set(before.namespace)
        assert _lookup(after) is not _lookup(before)
        assert _holder(_lookup(before)) is _holder(functions[0])
    assert _holder(_lookup(again[0])) is _holder(_lookup(again[1])) is not _holder(functions[0])


def _lookup(channel):
    (function,) = [value for name, value in channel.namespace.items() if name.startswith("lut_")]
    return function


_PROBE = np.concatenate([np.linspace(-0.12, 0.08, 97), np.linspace(*GRID)[::7], [np.nan]])


@pytest.mark.cpp_standalone
def test_shared_functions_read_the_same_values_in_cpp_standalone(standalone_device):
    originals = _functions()
    shared = share_rows(originals)
    columns = [(0, 0), (0, 2), (1, 0), (1, 1), (1, 2), (1, 3)]  # (function, column); 1/2, 1/3: step columns
    start_scope()
    eqs = "v : volt\n" + "\n".join(f"out{j} : 1" for j in range(len(columns)))
    namespace = {f.pyfunc.__name__: f for f in shared}
    group = NeuronGroup(len(_PROBE), eqs, namespace=namespace)
    group.v = _PROBE * 1e3 * mV
    code = "\n".join(f"out{j} = {shared[f].pyfunc.__name__}(v, {k})" for j, (f, k) in enumerate(columns))
    group.run_regularly(code, when="start")
    monitor = StateMonitor(group, [f"out{j}" for j in range(len(columns))], record=True)
    run(0.1 * ms)
    owner = _owner(float(group.clock.dt_))
    for j, (f, k) in enumerate(columns):
        table = table_for(originals[f], owner)
        want = interpolate(table.values, table.x_min, table.x_max, _PROBE, k, table.slopes)
        # up to rounding: gcc contracts the interpolation into a fused multiply-add
        np.testing.assert_allclose(getattr(monitor, f"out{j}")[:, 0], want, rtol=1e-12, atol=1e-14, err_msg=f"out{j}")
    static = {p.name for p in (standalone_device / "static_arrays").iterdir()}
    assert sum(name.startswith("nml2lut_rows_") for name in static) == 1
    assert not any(name.startswith("nml2lut_values_lut_") for name in static), static


def _channels_group(channels):
    leak = "0.3*msiemens/cm**2*(v + 65*mV)"
    eqs = Equations(f"dv/dt = (I - I_KA1 - I_KA2 - {leak})/(1*uF/cm**2) : volt\nI : amp/meter**2")
    namespace = {}
    for channel in channels:
        eqs += channel.equations
        namespace.update(channel.namespace)
    group = NeuronGroup(5, eqs, namespace=namespace, method=nml2lut.METHOD)
    group.v = "(-80 + 10*i)*mV"
    group.I = "(2 + i)*uA/cm**2"
    for channel in channels:
        channel.init(group)
    return group


def _trajectories(channels):
    group = _channels_group(channels)
    monitor = StateMonitor(group, ["v", "m_KA1", "h_KA2"], record=True)
    run(5 * ms)
    return {name: np.array(getattr(monitor, name)) for name in ("v", "m_KA1", "h_KA2")}


def _ka_channels():
    """Two channels of one file, on one grid, with g and E as constants."""
    path = EXAMPLES / "q10_ka.channel.nml"
    own = [
        nml2lut.load_channel(path, "q10_ka", name="KA1", temperature="36degC", g="10mS_per_cm2", E=-90 * mV),
        nml2lut.load_channel(path, "q10_ka2", name="KA2", temperature="36degC", g="8mS_per_cm2", E=-90 * mV),
    ]
    return nml2lut.share_grid(own)


@pytest.fixture(scope="module")
def numpy_trajectories():
    start_scope()
    return _trajectories(_ka_channels())


@pytest.mark.cpp_standalone
def test_shared_channels_step_as_in_numpy_in_cpp_standalone(numpy_trajectories, standalone_device):
    start_scope()
    got = _trajectories(_ka_channels())
    for name, want in numpy_trajectories.items():
        np.testing.assert_allclose(got[name], want, rtol=1e-9, atol=1e-12, err_msg=name)
    assert np.ptp(numpy_trajectories["v"]) > 10e-3, "the cells should move"
    static = {p.name for p in (standalone_device / "static_arrays").iterdir()}
    assert sum(name.startswith("nml2lut_rows_") and "_dt" in name for name in static) == 1, static
    assert not any(name.startswith("nml2lut_values_lut_") for name in static), static
