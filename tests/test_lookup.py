"""lookup: interpolation against np.interp, every error path, and numpy/Cython/cpp_standalone parity."""

from __future__ import annotations

import brian2
import brian2.core.functions as brian2_functions
import numpy as np
import pytest
from brian2 import Network, NeuronGroup, StateMonitor, defaultclock, ms, mV, prefs, volt
from brian2.core.base import BrianObjectException
from brian2.units.fundamentalunits import DimensionMismatchError

from nml2lut.errors import TableError
from nml2lut.lookup import (
    WHERE_FUNCTION_NAME,
    LookupTable,
    check_function_name,
    interpolate,
    make_lookup_function,
    make_where_function,
)

RTOL = 1e-12  # -ffast-math (FMA contraction) may change the last bits


def _table_a(scale: float = 1.0) -> LookupTable:
    """Three curves of a voltage: a sigmoid, a time-constant bump, a steep exponential."""
    v = np.linspace(-0.1, 0.05, 151)
    values = np.column_stack(
        [
            1 / (1 + np.exp(-(v + 0.04) / 0.009)),
            1e-3 * (0.5 + 4 * np.exp(-(((v + 0.05) / 0.02) ** 2))),
            np.exp(v / 0.01),
        ]
    )
    return LookupTable(scale * values + (scale - 1.0), -0.1, 0.05)


def _table_b() -> LookupTable:
    v = np.linspace(-0.09, 0.03, 61)
    return LookupTable(np.column_stack([np.sin(40 * v), v**2 * 100]), -0.09, 0.03)


def _probe(table: LookupTable) -> np.ndarray:
    """Grid points, midpoints, both ends, out-of-range values, infinities and NaN."""
    x = table.x
    outside = [-1.0, table.x_min - 1e-9, table.x_max + 1e-9, 1.0, -np.inf, np.inf, np.nan]
    return np.concatenate([x, (x[:-1] + x[1:]) / 2, outside])


def _expected(table: LookupTable, v: np.ndarray, column: int) -> np.ndarray:
    return interpolate(table.values, table.x_min, table.x_max, v, column)


# --- interpolate ------------------------------------------------------------------------------


@pytest.mark.parametrize("column", [0, 1, 2])
def test_interpolate_matches_np_interp(column):
    table = _table_a()
    x = _probe(table)
    got = interpolate(table.values, table.x_min, table.x_max, x, column)
    want = np.interp(x, table.x, table.values[:, column])
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-15)
    assert np.isnan(got[-1])


def test_interpolate_is_exact_at_grid_ends_and_clamps():
    table = _table_a()
    x = np.array([table.x_min, table.x_max, -5.0, 5.0, -np.inf, np.inf])
    got = interpolate(table.values, table.x_min, table.x_max, x, 2)
    edges = table.values[[0, -1, 0, -1, 0, -1], 2]
    np.testing.assert_array_equal(got, edges)


def test_interpolate_between_points_and_shapes():
    table = np.array([[0.0, 1.0], [10.0, 3.0], [20.0, -1.0]])
    x = np.array([[0.25, 0.5], [1.5, np.nan]])
    np.testing.assert_allclose(interpolate(table, 0.0, 2.0, x, 0), [[2.5, 5.0], [15.0, np.nan]])
    np.testing.assert_allclose(interpolate(table, 0.0, 2.0, x, 1), [[1.5, 2.0], [1.0, np.nan]])
    assert interpolate(table, 0.0, 2.0, 0.5, np.int64(0)) == 5.0  # scalar in, scalar out


@pytest.mark.parametrize(
    ("column", "match"),
    [
        (2, r"column index 2 is out of range for a table of 2"),
        (-1, "out of range"),
        (1.0, "must be an integer, got 1.0"),
        (True, "must be an integer, got True"),
    ],
)
def test_interpolate_rejects_bad_column(column, match):
    with pytest.raises(TableError, match=match):
        interpolate(np.zeros((3, 2)), 0.0, 1.0, np.zeros(2), column)


# --- LookupTable validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "x_min", "x_max", "match"),
    [
        (np.zeros(5), 0.0, 1.0, r"2-D array \(n_points, n_columns\), got shape \(5,\)"),
        (np.zeros((1, 2)), 0.0, 1.0, "at least 2 points, got 1"),
        (np.zeros((3, 0)), 0.0, 1.0, "at least 1 column"),
        (np.zeros((3, 1)), 1.0, 1.0, "range is empty: x_max=1.0 is not above x_min=1.0"),
        (np.zeros((3, 1)), 1.0, 0.0, "range is empty"),
        (np.zeros((3, 1)), np.nan, 1.0, "range must be finite, got x_min=nan"),
        (np.zeros((3, 1)), 0.0, np.inf, "range must be finite"),
        (np.zeros((3, 1)), 0.0, 5e-324, "step is too small to invert"),
    ],
)
def test_table_rejects_bad_shape_or_range(values, x_min, x_max, match):
    with pytest.raises(TableError, match=match):
        LookupTable(values, x_min, x_max)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_table_names_first_non_finite_value(bad):
    values = np.zeros((5, 3))
    values[3, 1] = bad
    values[4, 0] = bad
    with pytest.raises(TableError, match=rf"column 1 is {bad} at point 3 \(x = 0\.75\); 2 value"):
        LookupTable(values, 0.0, 1.0)


def test_table_is_a_read_only_copy():
    source = np.array([[1, 2], [3, 4], [5, 6]])
    table = LookupTable(source, -1, 1)
    source[0, 0] = 99
    assert table.values.dtype == np.float64 and table.values.flags.c_contiguous
    assert table.values[0, 0] == 1.0 and not table.values.flags.writeable
    assert (table.n_points, table.n_columns, table.x_min) == (3, 2, -1.0)
    np.testing.assert_array_equal(table.x, [-1.0, 0.0, 1.0])


# --- names and construction errors -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("", "not valid: expected a letter"),
        ("1abc", "not valid"),
        ("_x", "not valid"),
        ("a-b", "not valid"),
        ("lut Na", "not valid"),
        (3, "not valid"),
        ("a__b", "contains '__'"),
        ("double", "keyword"),
        ("class", "keyword"),
        ("cdef", "keyword"),
        ("lambda", "keyword"),
        ("match", "keyword"),
        ("nml2lut_Na", "starts with 'nml2lut_', which nml2lut reserves"),
        (WHERE_FUNCTION_NAME, "reserves"),
    ],
)
def test_function_name_is_checked(name, match):
    with pytest.raises(TableError, match=match):
        check_function_name(name)
    with pytest.raises(TableError, match=match):
        make_lookup_function(_table_b(), name)


@pytest.mark.parametrize("name", ["lut_Na", "L", "lut_k_3fa9b2c1d0", "Na_1"])
def test_valid_function_names_pass(name):
    assert check_function_name(name) == name


def test_make_lookup_function_needs_a_lookup_table():
    with pytest.raises(TableError, match="needs a LookupTable, got ndarray"):
        make_lookup_function(np.zeros((3, 1)), "lut_x")


# --- Python-level call and the numpy implementation ------------------------------------------


def test_python_call_checks_units():
    table = _table_b()
    f = make_lookup_function(table, "lut_b")
    v = np.array([-0.1, -0.0305, 0.0, 0.2])
    np.testing.assert_allclose(f(v * volt, 1), _expected(table, v, 1), rtol=RTOL)
    assert f(-30.5 * mV, 0) == pytest.approx(_expected(table, -0.0305, 0), rel=RTOL)
    with pytest.raises(DimensionMismatchError):
        f(0.5, 0)
    with pytest.raises(TableError, match="column index 2 is out of range"):
        f(0 * mV, 2)
    ms_function = make_lookup_function(LookupTable([[0.0], [1.0]], 0.0, 0.002), "lut_t", arg_unit=ms)
    assert ms_function(1 * ms, 0) == pytest.approx(0.5)


def test_numpy_implementation_rejects_array_column():
    numpy_impl = make_lookup_function(_table_b(), "lut_b").implementations["numpy"].get_code(None)
    with pytest.raises(TableError, match="lut_b: the column index must be an integer literal"):
        numpy_impl(np.zeros(3), np.array([0, 1, 0]))


@pytest.fixture
def numpy_target():
    previous = prefs.codegen.target
    prefs.codegen.target = "numpy"
    yield
    prefs.codegen.target = previous


def test_numpy_implementation_bypasses_unit_wrapper(numpy_target, monkeypatch):
    """10,000 neurons through the numpy target never reach Brian2's unit-checking wrapper."""
    calls = []
    checker = brian2_functions.fail_for_dimension_mismatch

    def spy(*args, **kwargs):
        calls.append(args)
        return checker(*args, **kwargs)

    monkeypatch.setattr(brian2_functions, "fail_for_dimension_mismatch", spy)
    table = _table_a()
    f = make_lookup_function(table, "lut_a")
    impl = f.implementations["numpy"].get_code(None)
    assert impl.__qualname__ == "_numpy_implementation.<locals>.lookup"
    volts = np.linspace(-0.12, 0.07, 10_000)
    group = NeuronGroup(len(volts), "v : volt\ny = lut_a(v, 1) : 1", namespace={"lut_a": f})
    group.v = volts * volt
    np.testing.assert_allclose(group.y[:], _expected(table, volts, 1), rtol=RTOL)
    assert calls == []
    # Control: the same function with Brian2's default numpy implementation is wrapped.
    wrapped = brian2.Function(f.pyfunc, arg_units=[volt, 1], arg_types=["float", "integer"], return_unit=1)
    control = NeuronGroup(len(volts), "v : volt\ny = lut_w(v, 1) : 1", namespace={"lut_w": wrapped})
    control.v = volts * volt
    control.y[:]
    assert len(calls) == 1


def test_numpy_out_of_range_column_raises(numpy_target):
    f = make_lookup_function(_table_b(), "lut_b")
    group = NeuronGroup(2, "v : volt\ny = lut_b(v, 5) : 1", namespace={"lut_b": f})
    with pytest.raises(BrianObjectException, match=r"y = lut_b\(v, 5\)") as info:
        group.y[:]
    with pytest.raises(TableError, match="column index 5 is out of range"):
        raise info.value.__cause__


def test_where_rejects_a_float_condition(numpy_target):
    group = NeuronGroup(
        2, "x : 1\ny = nml2lut_where(x, 1.0, 2.0) : 1", namespace={WHERE_FUNCTION_NAME: make_where_function()}
    )
    match = r"takes arguments with types \['boolean', 'any', 'any'\] but received \['float'"
    with pytest.raises(TypeError, match=match):
        group.y[:]


def test_where_function_is_one_object_and_checks_units(numpy_target):
    where = make_where_function()
    assert make_where_function() is where
    np.testing.assert_array_equal(where(np.array([True, False]), 1.0, 2.0), [1.0, 2.0])
    numpy_where = where.implementations["numpy"].get_code(None)
    assert numpy_where(np.array([True, False]), 1, 2).dtype == np.float64  # as in C: doubles
    group = NeuronGroup(
        1, "v : volt\ny = nml2lut_where(v > 0*mV, v, 1.0) : volt", namespace={WHERE_FUNCTION_NAME: where}
    )
    with pytest.raises(BrianObjectException, match="preparing an object") as info:
        Network(group).run(defaultclock.dt)
    with pytest.raises(DimensionMismatchError, match="Argument number 3 for function nml2lut_where"):
        raise info.value.__cause__


# --- parity of numpy, Cython and cpp_standalone ----------------------------------------------

_X = np.array([0.0, 0.25, 0.5, 0.75, 1.0])


def _parity_network(tables: dict[str, LookupTable], ode: bool, compiled: bool):
    """One group evaluating every column of every table and the where function at the probe voltages.

    Compiled targets also evaluate a column that does not exist: NaN, as they cannot raise.
    """
    v = np.concatenate([_probe(t) for t in tables.values()])
    namespace = {WHERE_FUNCTION_NAME: make_where_function()}
    lines = ["v : volt", "x : 1"]
    for name, table in tables.items():
        namespace[name] = make_lookup_function(table, name)
        lines += [f"y_{name}_{k} = {name}(v, {k}) : 1" for k in range(table.n_columns)]
    lines += [
        "w_float = nml2lut_where(x > 0.5, x*2, x*3) : 1",
        "w_literal = nml2lut_where(x > 0, 1.0, 2.0) : 1",
        "w_volt = nml2lut_where(v > -40*mV, v, -v) : volt",
    ]
    if compiled:
        lines.append("y_bad = lut_b(v, 7) : 1")
    if ode:  # a lookup inside an ODE that exponential Euler rewrites through sympy
        lines.append("dm/dt = (lut_a(v, 0) - m)/(lut_a(v, 1)*second) : 1")
    names = [line.split(" = ")[0] for line in lines[2:] if not line.startswith("dm/dt")]
    # Fixed names: the generated code depends on them, and the Cython test needs identical code.
    group = NeuronGroup(len(v), "\n".join(lines), namespace=namespace, method="exponential_euler", name="parity")
    group.v = v * volt
    group.x = np.resize(_X, len(v))
    monitor = StateMonitor(group, names, record=True, name="parity_monitor")
    return Network(group, monitor), group, monitor, v


def _check_parity(tables, group, monitor, v, ode, compiled):
    for name, table in tables.items():
        for k in range(table.n_columns):
            got = getattr(monitor, f"y_{name}_{k}")[:, 0]
            np.testing.assert_allclose(got, _expected(table, v, k), rtol=RTOL, atol=1e-15, err_msg=f"{name}[{k}]")
    x = np.resize(_X, len(v))
    np.testing.assert_array_equal(monitor.w_float[:, 0], np.where(x > 0.5, x * 2, x * 3))
    np.testing.assert_array_equal(monitor.w_literal[:, 0], np.where(x > 0, 1.0, 2.0))
    np.testing.assert_array_equal(monitor.w_volt[:, 0], np.where(v > -0.04, v, -v) * volt)
    if compiled:
        assert np.isnan(monitor.y_bad[:]).all()
    if ode:
        inf, tau = _expected(tables["lut_a"], v, 0), _expected(tables["lut_a"], v, 1)
        np.testing.assert_allclose(group.m[:], inf * -np.expm1(-float(defaultclock.dt) / tau), rtol=1e-9)


def test_parity_numpy(numpy_target):
    tables = {"lut_a": _table_a(), "lut_b": _table_b()}
    net, group, monitor, probe = _parity_network(tables, ode=True, compiled=False)
    net.run(defaultclock.dt)
    _check_parity(tables, group, monitor, probe, ode=True, compiled=False)


@pytest.mark.cython
def test_parity_cython_and_fresh_values_per_run(tmp_path, monkeypatch):
    """Cython run twice with the same names and shapes: the second run sees its own values.

    The second run's code is identical, so Brian2 reuses the compiled module (checked,
    or the test would prove nothing); the arrays travel through the namespace and
    cannot be stale.
    """
    from brian2.codegen.runtime.cython_rt.extension_manager import cython_extension_manager

    monkeypatch.chdir(tmp_path)
    previous = prefs.codegen.target
    prefs.codegen.target = "cython"
    try:
        modules = []
        for scale in (1.0, 3.0):
            tables = {"lut_a": _table_a(scale), "lut_b": _table_b()}
            net, group, monitor, probe = _parity_network(tables, ode=False, compiled=True)
            net.run(defaultclock.dt)
            _check_parity(tables, group, monitor, probe, ode=False, compiled=True)
            modules.append(len(cython_extension_manager._code_cache))
            del net, group, monitor
    finally:
        prefs.codegen.target = previous
    assert modules[1] == modules[0], "second run compiled new code: the stale-cache check is void"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.cpp_standalone
def test_parity_cpp_standalone(standalone_device, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tables = {"lut_a": _table_a(), "lut_b": _table_b()}
    net, group, monitor, probe = _parity_network(tables, ode=True, compiled=True)
    net.run(defaultclock.dt)
    _check_parity(tables, group, monitor, probe, ode=True, compiled=True)
    assert [p.name for p in tmp_path.iterdir()] == [standalone_device.name]
    static = standalone_device / "static_arrays"
    assert {"nml2lut_values_lut_a", "nml2lut_values_lut_b"} <= {p.name for p in static.iterdir()}
