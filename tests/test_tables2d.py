"""Grid refinement of 2-D tables (voltage x concentration): each axis as fine as its own curve needs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from nml2lut.errors import TableError
from nml2lut.tables import GridWarning
from nml2lut.tables2d import MAX_VALUES, build_tables_2d


def _hill(v, c):
    """A calcium-gated steady state that does not depend on the voltage (an SK channel's)."""
    return 1.0 / (1.0 + (4.3e-4 / c) ** 4.8) + 0.0 * v


def _boltzmann(v, c):
    """A voltage-gated steady state that does not depend on the concentration."""
    return 1.0 / (1.0 + np.exp(-(v + 0.03) / 0.005)) + 0.0 * c


def _both(v, c):
    """A BK-like steady state: the half-activation voltage moves with log(c)."""
    return 1.0 / (1.0 + np.exp(-(v - 0.02 * np.log10(c / 1e-3)) / 0.008))


def _measured(tables, curve, n=20_011):
    """The largest error of the lookup against the curve on a random sample of the table's domain."""
    rng = np.random.default_rng(1)
    table = tables.table
    v = rng.uniform(table.x[0], table.x[-1], n)
    c = np.exp(rng.uniform(np.log(table.y[0]), np.log(table.y[-1]), n))
    return float(np.max(np.abs(tables.interpolate(v, c, "inf") - curve(v, c))))


@pytest.mark.parametrize("tolerance", [1e-4, 1e-6])
def test_a_curve_of_the_concentration_alone_keeps_its_starting_voltage_axis(tolerance):
    with warnings.catch_warnings():
        warnings.simplefilter("error", GridWarning)
        tables = build_tables_2d({"inf": _hill}, v_range=(-0.1, 0.06), tolerance=tolerance)
    assert tables.table.x.size == 161  # the 1 mV starting step over 160 mV
    assert tables.max_error <= tolerance
    assert _measured(tables, _hill) <= 1.5 * tolerance


@pytest.mark.parametrize("tolerance", [1e-4, 1e-6])
def test_a_curve_of_the_voltage_alone_keeps_its_starting_concentration_axis(tolerance):
    with warnings.catch_warnings():
        warnings.simplefilter("error", GridWarning)
        tables = build_tables_2d({"inf": _boltzmann}, v_range=(-0.1, 0.06), conc_range=(1e-6, 10.0),
                                 tolerance=tolerance)  # fmt: skip
    assert tables.table.y.size == 57  # 8 points per decade over 7 decades
    assert tables.max_error <= tolerance
    assert _measured(tables, _boltzmann) <= 1.5 * tolerance


def test_a_curve_of_both_meets_a_tight_tolerance_within_the_size_limit():
    with warnings.catch_warnings():
        warnings.simplefilter("error", GridWarning)
        tables = build_tables_2d({"inf": _both}, v_range=(-0.1, 0.06), conc_range=(1e-5, 1.0), tolerance=1e-6)
    assert tables.table.values.size <= MAX_VALUES
    assert tables.max_error <= 1e-6
    assert _measured(tables, _both) <= 1.5e-6
    coarse = build_tables_2d({"inf": _both}, v_range=(-0.1, 0.06), conc_range=(1e-5, 1.0), tolerance=1e-4)
    assert coarse.table.x.size < tables.table.x.size and coarse.table.y.size < tables.table.y.size


def test_a_jump_is_reported_not_refined_without_end():
    def step(v, c):
        return np.where(c > 1e-3, 1.0, 0.0) + 0.0 * v

    with pytest.warns(GridWarning, match="stopped shrinking"):
        tables = build_tables_2d({"inf": step}, v_range=(-0.1, 0.06), tolerance=1e-4)
    assert tables.table.x.size == 161  # the voltage axis had nothing to do with it
    assert tables.table.values.size <= MAX_VALUES


def test_a_non_finite_curve_is_an_error_naming_where():
    def bad(v, c):
        return 1.0 / (v + 0.0 * c)

    with pytest.raises(TableError, match="not finite at v = 0 mV"):
        build_tables_2d({"inf": bad}, v_range=(-0.1, 0.1))


def test_the_size_limit_is_named_when_it_stops_the_refinement(monkeypatch):
    import nml2lut.tables2d as tables2d

    monkeypatch.setattr(tables2d, "MAX_VALUES", 20_000)
    with pytest.warns(GridWarning, match=r"the size limit, 20000 values"):
        tables = build_tables_2d({"inf": _both}, v_range=(-0.1, 0.06), conc_range=(1e-5, 1.0), tolerance=1e-6)
    assert 0.5 * 20_000 < tables.table.values.size <= 20_000  # the last grid uses the budget
