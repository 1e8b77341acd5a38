"""lookup, 2-D: bilinear interpolation against a loop reference, every error path, target parity."""

from __future__ import annotations

import math

import brian2
import brian2.core.functions as brian2_functions
import numpy as np
import pytest
from brian2 import Network, NeuronGroup, StateMonitor, defaultclock, mM, ms, mV, prefs, volt
from brian2.units.fundamentalunits import DimensionMismatchError

from nml2lut.errors import TableError
from nml2lut.lookup import LookupTable, LookupTable2D, interpolate2d, make_lookup_function_2d

RTOL = 1e-12  # -ffast-math (FMA contraction) and libm's log against numpy's may change the last bits
ATOL = 1e-15


def _table_kca(scale: float = 1.0) -> LookupTable2D:
    """A Ca-activated K gate: inf and tau over -100..50 mV x 1e-6..10 mM (log), and a wiggly curve."""
    v = np.linspace(-0.1, 0.05, 31)[:, None]
    ca = np.geomspace(1e-6, 10.0, 29)[None, :]
    kd = 1e-3 * np.exp(-v / 0.024)
    columns = [
        1 / (1 + (kd / ca) ** 2),
        1e-3 + 4e-3 / (1 + ca / 1e-3) + 1e-3 * np.exp(-(((v + 0.04) / 0.02) ** 2)),
        np.sin(30 * v) * np.log10(ca) + v * 10,
    ]
    return LookupTable2D(scale * np.stack(columns, axis=-1), -0.1, 0.05, 1e-6, 10.0)


def _table_linear() -> LookupTable2D:
    """A linear y axis from 0 (where a log axis cannot start) to 2 mM."""
    v = np.linspace(-0.09, 0.03, 25)[:, None]
    ca = np.linspace(0.0, 2e-3, 9)[None, :]
    columns = [np.cos(50 * v) * (1 + 300 * ca), np.exp(v / 0.02) * ca * 1e3 - 0.5]
    return LookupTable2D(np.stack(columns, axis=-1), -0.09, 0.03, 0.0, 2e-3, y_scale="linear")


def _locate(grid: np.ndarray, u: float) -> tuple[int, float]:
    """Cell and weight of the next point by a linear search; clamped to the ends."""
    if u <= grid[0]:
        return 0, 0.0
    if u >= grid[-1]:
        return len(grid) - 2, 1.0
    i = 0
    while grid[i + 1] <= u:
        i += 1
    return i, (u - grid[i]) / (grid[i + 1] - grid[i])


def _reference(table: LookupTable2D, x, y, column: int) -> np.ndarray:
    """Bilinear interpolation one point at a time, weighting the four corners of the cell."""
    log = table.y_scale == "log"
    grid_y = np.log(table.y) if log else table.y
    corners = table.values[:, :, column]
    x, y = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    out = []
    for xi, yi in zip(x.ravel().tolist(), y.ravel().tolist(), strict=True):
        if math.isnan(xi) or math.isnan(yi):
            out.append(math.nan)
            continue
        if log:
            yi = math.log(yi) if yi > 0 else -math.inf
        i, fx = _locate(table.x, xi)
        j, fy = _locate(grid_y, yi)
        out.append(
            (1 - fx) * (1 - fy) * corners[i, j]
            + fx * (1 - fy) * corners[i + 1, j]
            + (1 - fx) * fy * corners[i, j + 1]
            + fx * fy * corners[i + 1, j + 1]
        )
    return np.array(out).reshape(x.shape)


def _probe(table: LookupTable2D, n_random: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (x, y): random inside, some grid nodes, each axis out of range, y <= 0, infinities, NaN."""
    rng = np.random.default_rng(7)
    x_in = rng.uniform(table.x_min, table.x_max, n_random)
    if table.y_scale == "log":
        y_in = np.exp(rng.uniform(math.log(table.y_min), math.log(table.y_max), n_random))
    else:
        y_in = rng.uniform(table.y_min, table.y_max, n_random)
    x_nodes, y_nodes = table.x[::7], table.y[::5]
    x_node, y_node = (a.ravel() for a in np.meshgrid(x_nodes, y_nodes, indexing="ij"))
    x_out = [table.x_min - 1.0, table.x_max + 1.0, -np.inf, np.inf, np.nan]
    y_out = [table.y_min / 10 if table.y_min > 0 else -1.0, table.y_max * 10, 0.0, -1e-3, -np.inf, np.inf, np.nan]
    x_edge, y_edge = (a.ravel() for a in np.meshgrid(x_out, y_out, indexing="ij"))
    mid_x, mid_y = (table.x_min + table.x_max) / 2, float(np.median(table.y))
    x = np.concatenate([x_in, x_node, x_out, np.full(len(y_out), mid_x), x_edge])
    y = np.concatenate([y_in, y_node, np.full(len(x_out), mid_y), y_out, y_edge])
    return x, y


# --- interpolate2d ----------------------------------------------------------------------------


@pytest.mark.parametrize("table", [_table_kca(), _table_linear()], ids=["log", "linear"])
def test_interpolate2d_matches_loop_reference(table):
    x, y = _probe(table)
    for column in range(table.n_columns):
        got = interpolate2d(table, x, y, column)
        want = _reference(table, x, y, column)
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=f"column {column}")
        assert np.isnan(got).sum() == np.isnan(x).sum() + np.isnan(y).sum() - (np.isnan(x) & np.isnan(y)).sum()


def test_exact_at_grid_nodes_on_a_dyadic_grid():
    """Nodes whose positions are exact integers give the stored values bit for bit."""
    values = np.random.default_rng(1).normal(size=(5, 5, 2))
    table = LookupTable2D(values, 0.0, 4.0, 0.0, 8.0, y_scale="linear")
    x, y = (a.ravel() for a in np.meshgrid(table.x, table.y, indexing="ij"))
    for column in range(2):
        np.testing.assert_array_equal(interpolate2d(table, x, y, column), values[:, :, column].ravel())


def test_log_grid_nodes_and_corners():
    table = _table_kca()
    x, y = (a.ravel() for a in np.meshgrid(table.x, table.y, indexing="ij"))
    np.testing.assert_allclose(interpolate2d(table, x, y, 0), table.values[:, :, 0].ravel(), rtol=RTOL, atol=ATOL)
    # Clamped corners are the corner values exactly.
    got = interpolate2d(table, np.array([-1.0, -1.0, 1.0, 1.0]), np.array([0.0, 1e3, -5.0, np.inf]), 2)
    np.testing.assert_array_equal(got, table.values[[0, 0, -1, -1], [0, -1, 0, -1], 2])


def test_clamps_each_axis_to_its_edge():
    table = _table_kca()
    y = np.geomspace(3e-6, 5.0, 13)
    x = np.linspace(-0.095, 0.045, 13)
    for column in range(table.n_columns):
        np.testing.assert_array_equal(
            interpolate2d(table, np.full(13, -0.5), y, column), interpolate2d(table, table.x_min, y, column)
        )
        np.testing.assert_array_equal(
            interpolate2d(table, np.full(13, -np.inf), y, column), interpolate2d(table, table.x_min, y, column)
        )
        above_x = interpolate2d(table, np.full(13, 0.5), y, column)
        np.testing.assert_allclose(above_x, _reference(table, table.x_max, y, column), rtol=RTOL, atol=ATOL)
        above_y = interpolate2d(table, x, np.full(13, 1e3), column)
        np.testing.assert_allclose(above_y, _reference(table, x, table.y_max, column), rtol=RTOL, atol=ATOL)
        below_y = interpolate2d(table, x, np.full(13, 1e-9), column)
        np.testing.assert_allclose(below_y, _reference(table, x, table.y_min, column), rtol=RTOL, atol=ATOL)


def test_log_axis_reads_y_min_for_y_at_or_below_zero():
    table = _table_kca()
    x = np.linspace(-0.12, 0.07, 9)
    at_min = interpolate2d(table, x, table.y_min, 0)
    np.testing.assert_allclose(at_min, _reference(table, x, table.y_min, 0), rtol=RTOL, atol=ATOL)
    for y in (0.0, -0.0, -1e-3, -np.inf, 1e-300):
        np.testing.assert_array_equal(interpolate2d(table, x, y, 0), interpolate2d(table, x, 0.0, 0))
    np.testing.assert_allclose(interpolate2d(table, x, 0.0, 0), at_min, rtol=RTOL, atol=ATOL)


def test_linear_axis_clamps_below_y_min():
    table = _table_linear()  # y_min = 0: a negative concentration reads the y = 0 edge
    x = np.linspace(-0.1, 0.04, 7)
    np.testing.assert_array_equal(interpolate2d(table, x, -1.0, 1), interpolate2d(table, x, 0.0, 1))
    np.testing.assert_allclose(interpolate2d(table, x, 0.0, 1), _reference(table, x, 0.0, 1), rtol=RTOL, atol=ATOL)


def test_nan_in_either_coordinate_gives_nan():
    table = _table_kca()
    x = np.array([np.nan, -0.05, np.nan, 0.5, np.nan])
    y = np.array([1e-3, np.nan, np.nan, np.nan, 0.0])
    for column in range(table.n_columns):
        assert np.isnan(interpolate2d(table, x, y, column)).all()


def test_broadcasting_and_scalars():
    table = _table_kca()
    x, y = np.linspace(-0.1, 0.05, 3)[:, None], np.geomspace(1e-5, 1.0, 4)
    got = interpolate2d(table, x, y, 1)
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got, _reference(table, x, y, 1), rtol=RTOL, atol=ATOL)
    scalar = interpolate2d(table, -0.03, 2e-4, np.int64(1))
    assert np.ndim(scalar) == 0
    assert scalar == pytest.approx(float(_reference(table, -0.03, 2e-4, 1)), rel=RTOL)


@pytest.mark.parametrize("y_scale", ["log", "linear"])
def test_reproduces_a_bilinear_function(y_scale):
    """``1 + 2x - 3u + 5xu`` (``u`` = log y or y) is bilinear in every cell: interpolation is exact."""
    u_min, u_max = (math.log(1e-4), 0.0) if y_scale == "log" else (1e-4, 1.0)

    def curve(x, u):
        return 1 + 2 * x - 3 * u + 5 * x * u

    values = curve(np.linspace(-0.08, 0.04, 13)[:, None], np.linspace(u_min, u_max, 9)[None, :])
    table = LookupTable2D(values[..., None], -0.08, 0.04, 1e-4, 1.0, y_scale=y_scale)
    rng = np.random.default_rng(3)
    x, u = rng.uniform(-0.08, 0.04, 200), rng.uniform(u_min, u_max, 200)
    y = np.exp(u) if y_scale == "log" else u
    np.testing.assert_allclose(interpolate2d(table, x, y, 0), curve(x, u), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize(
    ("column", "match"),
    [
        (3, r"column index 3 is out of range for a table of 3"),
        (-1, "out of range"),
        (0.0, "must be an integer, got 0.0"),
        (False, "must be an integer, got False"),
    ],
)
def test_interpolate2d_rejects_bad_column(column, match):
    with pytest.raises(TableError, match=match):
        interpolate2d(_table_kca(), 0.0, 1e-3, column)


def test_interpolate2d_needs_a_2d_table():
    with pytest.raises(TableError, match="interpolate2d needs a LookupTable2D, got LookupTable"):
        interpolate2d(LookupTable(np.zeros((3, 1)), 0.0, 1.0), 0.0, 1.0, 0)


# --- LookupTable2D validation ----------------------------------------------------------------

_GOOD = {"x_min": -0.1, "x_max": 0.05, "y_min": 1e-6, "y_max": 10.0}


@pytest.mark.parametrize(
    ("values", "changes", "match"),
    [
        (np.zeros((3, 4)), {}, r"3-D array \(n_x, n_y, n_columns\), got shape \(3, 4\)"),
        (np.zeros((1, 4, 2)), {}, "at least 2 points in x, got 1"),
        (np.zeros((3, 1, 2)), {}, "at least 2 points in y, got 1"),
        (np.zeros((3, 4, 0)), {}, "at least 1 column, got 0"),
        (np.zeros((3, 4, 1)), {"y_scale": "ln"}, "y_scale must be 'log' or 'linear', got 'ln'"),
        (np.zeros((3, 4, 1)), {"y_scale": None}, "y_scale must be 'log' or 'linear', got None"),
        (np.zeros((3, 4, 1)), {"x_max": -0.1}, r"range is empty: x_max=-0\.1 is not above x_min=-0\.1"),
        (np.zeros((3, 4, 1)), {"x_min": np.nan}, "range must be finite, got x_min=nan"),
        (np.zeros((3, 4, 1)), {"y_max": 1e-7}, r"range is empty: y_max=1e-07 is not above y_min=1e-06"),
        (np.zeros((3, 4, 1)), {"y_max": np.inf}, "range must be finite, got y_min=1e-06, y_max=inf"),
        (np.zeros((3, 4, 1)), {"y_min": 0.0}, r"a log y axis needs y_min > 0, got y_min=0\.0"),
        (np.zeros((3, 4, 1)), {"y_min": -1.0}, r"a log y axis needs y_min > 0, got y_min=-1\.0"),
        (  # the logs of the ends are equal
            np.zeros((3, 4, 1)),
            {"y_min": 1e300, "y_max": 1.0000000000000002e300},
            r"step is too small to invert: y_min=1e\+300, y_max=1\.0000000000000002e\+300",
        ),
        (np.zeros((3, 4, 1)), {"y_min": 0.0, "y_max": 5e-324, "y_scale": "linear"}, "step is too small to invert"),
        (np.zeros((3, 4, 1)), {"x_min": 0.0, "x_max": 5e-324}, r"step is too small to invert: x_min=0\.0"),
    ],
)
def test_table2d_rejects_bad_shape_scale_or_range(values, changes, match):
    with pytest.raises(TableError, match=match):
        LookupTable2D(values, **{**_GOOD, **changes})


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_table2d_names_first_non_finite_value(bad):
    values = np.zeros((4, 3, 2))
    values[2, 1, 1] = bad
    values[3, 2, 0] = bad
    match = rf"column 1 is {bad} at point \(2, 1\) \(x = 0\.5, y = 1\.0\); 2 value"
    with pytest.raises(TableError, match=match):
        LookupTable2D(values, -0.5, 1.0, 0.1, 10.0)


def test_table2d_is_a_read_only_copy_with_its_grids():
    source = np.ones((3, 5, 2), dtype=np.int32)
    table = LookupTable2D(source, -1, 1, 1, 1e4)
    source[0, 0, 0] = 99
    assert table.values.dtype == np.float64 and table.values.flags.c_contiguous
    assert table.values[0, 0, 0] == 1.0 and not table.values.flags.writeable
    assert (table.n_x, table.n_y, table.n_columns, table.y_scale) == (3, 5, 2, "log")
    assert isinstance(table.y_min, float) and isinstance(table.x_max, float)
    np.testing.assert_array_equal(table.x, [-1.0, 0.0, 1.0])
    np.testing.assert_allclose(table.y, [1.0, 10.0, 100.0, 1e3, 1e4], rtol=1e-15)
    assert (table.y[0], table.y[-1]) == (1.0, 1e4)
    linear = LookupTable2D(source, -1, 1, 0, 2, y_scale="linear")
    np.testing.assert_array_equal(linear.y, [0.0, 0.5, 1.0, 1.5, 2.0])


# --- the Brian2 function: names, units, numpy implementation ---------------------------------


@pytest.mark.parametrize(
    ("name", "match"),
    [("1abc", "not valid"), ("a__b", "contains '__'"), ("double", "keyword"), ("nml2lut_kca", "reserves")],
)
def test_function_name_is_checked(name, match):
    with pytest.raises(TableError, match=match):
        make_lookup_function_2d(_table_kca(), name)


def test_make_lookup_function_2d_needs_a_2d_table():
    with pytest.raises(TableError, match="make_lookup_function_2d needs a LookupTable2D, got LookupTable"):
        make_lookup_function_2d(LookupTable(np.zeros((3, 1)), 0.0, 1.0), "lut_x")


def test_python_call_checks_units():
    table = _table_kca()
    f = make_lookup_function_2d(table, "lut_kca")
    v, ca = np.array([-0.12, -0.0305, 0.0, 0.2]), np.array([1e-3, 0.0, 2e-2, 50.0])
    np.testing.assert_allclose(f(v * volt, ca * mM, 1), _reference(table, v, ca, 1), rtol=RTOL)
    assert f(-30.5 * mV, 0.5 * brian2.umolar, 0) == pytest.approx(float(_reference(table, -0.0305, 5e-4, 0)))
    with pytest.raises(DimensionMismatchError):
        f(0 * mV, 1e-3 * mV, 0)
    with pytest.raises(DimensionMismatchError):
        f(0.0, 1e-3 * mM, 0)
    with pytest.raises(TableError, match="column index 3 is out of range"):
        f(0 * mV, 1e-3 * mM, 3)
    custom = make_lookup_function_2d(
        LookupTable2D(np.array([[[0.0], [1.0]], [[2.0], [3.0]]]), 0.0, 0.002, 0.0, 1.0, y_scale="linear"),
        "lut_t",
        x_unit=ms,
        y_unit=1,
    )
    assert custom(1 * ms, 0.5, 0) == pytest.approx(1.5)


def test_numpy_implementation_rejects_array_column():
    numpy_impl = make_lookup_function_2d(_table_kca(), "lut_kca").implementations["numpy"].get_code(None)
    with pytest.raises(TableError, match="lut_kca: the column index must be an integer literal"):
        numpy_impl(np.zeros(3), np.ones(3), np.array([0, 1, 0]))


@pytest.fixture
def numpy_target():
    previous = prefs.codegen.target
    prefs.codegen.target = "numpy"
    yield
    prefs.codegen.target = previous


def test_numpy_implementation_bypasses_unit_wrapper(numpy_target, monkeypatch):
    calls = []
    checker = brian2_functions.fail_for_dimension_mismatch

    def spy(*args, **kwargs):
        calls.append(args)
        return checker(*args, **kwargs)

    monkeypatch.setattr(brian2_functions, "fail_for_dimension_mismatch", spy)
    table = _table_kca()
    f = make_lookup_function_2d(table, "lut_kca")
    assert f.implementations["numpy"].get_code(None).__qualname__ == "_numpy_implementation_2d.<locals>.lookup2d"
    x, y = _probe(table)
    group = NeuronGroup(len(x), "v : volt\nca : mmolar\nq = lut_kca(v, ca, 2) : 1", namespace={"lut_kca": f})
    group.v, group.ca = x * volt, y * mM
    np.testing.assert_allclose(group.q[:], _reference(table, x, y, 2), rtol=RTOL, atol=ATOL)
    assert calls == []


# --- parity of numpy, Cython and cpp_standalone ----------------------------------------------


def _parity_network(tables: dict[str, LookupTable2D], compiled: bool):
    """One group with every column of every table at the probe points, and a gate ODE.

    Compiled targets also evaluate a column that does not exist: NaN, as they cannot raise.
    """
    probes = [_probe(table) for table in tables.values()]
    v = np.concatenate([p[0] for p in probes])
    ca = np.concatenate([p[1] for p in probes])
    namespace, lines = {}, ["v : volt", "ca : mmolar"]
    for name, table in tables.items():
        namespace[name] = make_lookup_function_2d(table, name)
        lines += [f"y_{name}_{k} = {name}(v, ca, {k}) : 1" for k in range(table.n_columns)]
    if compiled:
        lines.append("y_bad = lut_kca(v, ca, 7) : 1")
    names = [line.split(" = ")[0] for line in lines[2:]]
    lines.append("dq/dt = (lut_kca(v, ca, 0) - q)/(lut_kca(v, ca, 1)*second) : 1")
    group = NeuronGroup(len(v), "\n".join(lines), namespace=namespace, method="exponential_euler", name="parity2d")
    group.v, group.ca = v * volt, ca * mM
    monitor = StateMonitor(group, names, record=True, name="parity2d_monitor")
    return Network(group, monitor), group, monitor, v, ca


def _check_parity(tables, group, monitor, v, ca, compiled) -> None:
    for name, table in tables.items():
        for k in range(table.n_columns):
            got = getattr(monitor, f"y_{name}_{k}")[:, 0]
            want = interpolate2d(table, v, ca, k)
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=f"{name}[{k}]")
            assert np.isnan(got).any()
    if compiled:
        assert np.isnan(monitor.y_bad[:]).all()
    inf, tau = interpolate2d(tables["lut_kca"], v, ca, 0), interpolate2d(tables["lut_kca"], v, ca, 1)
    want_q = inf * -np.expm1(-float(defaultclock.dt) / tau)
    np.testing.assert_allclose(group.q[:], want_q, rtol=1e-9, atol=ATOL)


def _tables() -> dict[str, LookupTable2D]:
    return {"lut_kca": _table_kca(), "lut_lin": _table_linear()}


def test_parity_numpy_matches_loop_reference(numpy_target):
    tables = _tables()
    net, group, monitor, v, ca = _parity_network(tables, compiled=False)
    net.run(defaultclock.dt)
    _check_parity(tables, group, monitor, v, ca, compiled=False)
    for name, table in tables.items():
        got = getattr(monitor, f"y_{name}_0")[:, 0]
        np.testing.assert_allclose(got, _reference(table, v, ca, 0), rtol=RTOL, atol=ATOL)


@pytest.mark.cython
def test_parity_cython(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    previous = prefs.codegen.target
    prefs.codegen.target = "cython"
    try:
        tables = _tables()
        net, group, monitor, v, ca = _parity_network(tables, compiled=True)
        net.run(defaultclock.dt)
        _check_parity(tables, group, monitor, v, ca, compiled=True)
    finally:
        prefs.codegen.target = previous
    assert list(tmp_path.iterdir()) == []


@pytest.mark.cpp_standalone
def test_parity_cpp_standalone(standalone_device, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tables = _tables()
    net, group, monitor, v, ca = _parity_network(tables, compiled=True)
    net.run(defaultclock.dt)
    _check_parity(tables, group, monitor, v, ca, compiled=True)
    assert [p.name for p in tmp_path.iterdir()] == [standalone_device.name]
    static = standalone_device / "static_arrays"
    assert {"nml2lut_values_lut_kca", "nml2lut_values_lut_lin"} <= {p.name for p in static.iterdir()}
    stored = np.fromfile(static / "nml2lut_values_lut_kca", dtype=np.float64)
    np.testing.assert_array_equal(stored, tables["lut_kca"].values.ravel())  # the table itself, point-major
