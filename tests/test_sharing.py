"""One grid for several channels (`nml2lut.share_grid`), constants for g and E, and nml2lut's exprel.

Checks: shared channels end on one grid as fine as the finest and covering all, with
errors measured on it within their tolerance and curves still matching the exact ones;
exact-mode channels and other voltage ranges are left alone; switch points with no
common spacing make channels keep their own grids (no silent loss of accuracy);
`load_channels` and `load_cell` share by default; ``g=``/``E=`` move the parameters to
the namespace with units checked; the series in nml2lut's exprel equals expm1(x)/x in
every target, around the switch at |x| = 1/8 too.
"""

from __future__ import annotations

from pathlib import Path

import brian2
import numpy as np
import pytest
from brian2 import Equations, NeuronGroup, cm, ms, msiemens, mV, run, start_scope

import nml2lut
from nml2lut.errors import ModelError, UnitError
from nml2lut.lookup import EXPREL_FUNCTION_NAME, make_exprel_function
from tests.helpers import write_nml

EXAMPLES = Path(__file__).resolve().parents[1] / "example_channels"
V = np.linspace(-0.1, 0.06, 4001)


def _cell_b():
    return [
        nml2lut.load_channel(EXAMPLES / "wb_na.channel.nml", name="Na"),
        nml2lut.load_channel(EXAMPLES / "wb_k.channel.nml", name="K"),
        nml2lut.load_channel(EXAMPLES / "q10_ka.channel.nml", "q10_ka", name="KA1", temperature="36degC"),
        nml2lut.load_channel(EXAMPLES / "q10_ka.channel.nml", "q10_ka2", name="KA2", temperature="36degC"),
        nml2lut.load_channel(EXAMPLES / "hh_leak.channel.nml", name="L"),
    ]


def test_channels_share_one_grid_as_fine_as_the_finest():
    own = _cell_b()
    shared = nml2lut.share_grid(own)
    tabled = [c for c in shared if c.grid is not None]
    assert len(tabled) == 4 and len({c.grid for c in tabled}) == 1
    grid = tabled[0].grid
    assert grid.step <= min(c.grid.step for c in own if c.grid is not None) * (1 + 1e-12)
    assert grid.v_min <= min(c.grid.v_min for c in own if c.grid is not None)
    assert grid.v_max >= max(c.grid.v_max for c in own if c.grid is not None)
    assert shared[-1] is own[-1]  # the leak has no tables
    for before, after in zip(own, shared, strict=True):
        assert after.name == before.name
        for key, error in after.errors.items():
            assert error.max_error <= max(after.tables.tolerance, before.errors[key].max_error)


def test_shared_tables_still_match_the_exact_curves():
    own = _cell_b()
    shared = nml2lut.share_grid(own)
    exact = {c.name: c for c in (
        nml2lut.load_channel(EXAMPLES / "wb_na.channel.nml", name="Na", mode="exact"),
        nml2lut.load_channel(EXAMPLES / "q10_ka.channel.nml", "q10_ka", name="KA1", temperature="36degC",
                             mode="exact"),
    )}  # fmt: skip
    for channel in shared:
        if channel.name not in exact:
            continue
        want = exact[channel.name].curves(V)
        got = channel.curves(V)
        for gate, curves in want.items():
            assert np.max(np.abs(got[gate]["inf"] - curves["inf"])) < 2 * channel.tables.tolerance
            if "tau" in curves:
                relative = np.abs(got[gate]["tau"] / curves["tau"] - 1)
                # the jump of q10_ka's h tau at -63 mV sits on a node, so it is no larger there
                assert np.max(relative) < 2 * channel.tables.tolerance, (channel.name, gate)


def test_sharing_leaves_exact_channels_and_other_ranges_alone():
    na = nml2lut.load_channel(EXAMPLES / "wb_na.channel.nml", name="Na")
    wide = nml2lut.load_channel(EXAMPLES / "wb_k.channel.nml", name="K", v_range=(-120 * mV, 60 * mV))
    exact = nml2lut.load_channel(EXAMPLES / "wb_k.channel.nml", name="Kx", mode="exact")
    shared = nml2lut.share_grid([na, wide, exact])
    assert shared[0] is na and shared[1] is wide and shared[2] is exact


_JUMP = """
    <ionChannelHH id="{id}" conductance="10pS" species="k">
        <gateHHtauInf id="h" instances="1">
            <timeCourse type="jumpTau" below="5ms" above="20ms" midpoint="{midpoint}"/>
            <steadyState type="HHSigmoidVariable" rate="1" midpoint="-60mV" scale="-6mV"/>
        </gateHHtauInf>
    </ionChannelHH>
    <ComponentType name="jumpTau" extends="baseVoltageDepTime">
        <Parameter name="below" dimension="time"/>
        <Parameter name="above" dimension="time"/>
        <Parameter name="midpoint" dimension="voltage"/>
        <Requirement name="v" dimension="voltage"/>
        <Dynamics>
            <ConditionalDerivedVariable name="t" exposure="t" dimension="time">
                <Case condition="v .lt. midpoint" value="below"/>
                <Case condition="v .geq. midpoint" value="above"/>
            </ConditionalDerivedVariable>
        </Dynamics>
    </ComponentType>
"""


def test_switch_points_without_common_spacing_keep_their_own_grids(tmp_path):
    # Two switch points always have a common spacing (their distance); these three have none
    # down to the picovolt, so no uniform grid has a node at all of them.
    channels = []
    for k, midpoint in enumerate(("-63.0123456789mV", "-41.987654321mV", "-20.5mV")):
        path = write_nml(tmp_path, _JUMP.format(id=f"jump{k}", midpoint=midpoint), f"jump{k}.channel.nml")
        channels.append(nml2lut.load_channel(path, name=f"J{k}"))
    assert all(c.tables.breakpoints for c in channels)  # each aligned its own grid
    shared = nml2lut.share_grid(channels)
    # a jump inside an interval is a 15 ms error there: the channels that would get one keep their grids
    assert len({c.grid for c in shared}) >= 2
    for channel in shared:
        assert channel.max_error <= channel.tables.tolerance
        assert channel.grid.index_of(channel.tables.breakpoints[0]) is not None


def test_load_channels_and_load_cell_share_by_default():
    channels = nml2lut.load_channels(EXAMPLES / "q10_ka.channel.nml", temperature="36degC")
    assert len({c.grid for c in channels}) == 1
    separate = nml2lut.load_channels(EXAMPLES / "q10_ka.channel.nml", temperature="36degC", share=False)
    assert len({c.grid for c in separate}) == 2
    cell = nml2lut.load_cell(EXAMPLES / "cells" / "ca_cell.cell.nml", temperature="6.3degC")
    grids = {c.grid for c in cell.channels.values() if c.grid is not None}
    assert len(grids) == 1


def test_g_and_E_as_constants():
    na = nml2lut.load_channel(EXAMPLES / "wb_na.channel.nml", name="Na", g="35mS_per_cm2", E=55 * mV)
    assert "g_Na" not in na.equations.names and "E_Na" not in na.equations.names
    assert float(na.namespace["g_Na"] / (msiemens / cm**2)) == pytest.approx(35)
    assert float(na.namespace["E_Na"] / mV) == pytest.approx(55)
    start_scope()
    eqs = Equations("dv/dt = -I_Na/(1*uF/cm**2) : volt") + na.equations
    group = NeuronGroup(2, eqs, namespace=na.namespace, method=nml2lut.METHOD)
    group.v = -60 * mV
    na.init(group)
    run(0.5 * ms, namespace={})
    assert np.all(np.isfinite(group.v[:]))
    with pytest.raises(UnitError, match="conductance density"):
        nml2lut.load_channel(EXAMPLES / "wb_na.channel.nml", name="Na", g=55 * mV)
    with pytest.raises(UnitError):
        nml2lut.load_channel(EXAMPLES / "wb_na.channel.nml", name="Na", E="55mS_per_cm2")


def test_g_of_a_channel_without_one_is_refused(monkeypatch):
    from nml2lut import channel as channel_module

    na = nml2lut.load_channel(EXAMPLES / "wb_na.channel.nml", name="Na")
    with pytest.raises(ModelError, match="no parameter 'g_X'"):
        channel_module._with_constants(na.code, "X", "1mS_per_cm2", None)


_X = np.concatenate([[0.0, 0.125, -0.125, 0.1249999999, -0.1249999999, 1e-300, -1e-300],
                     np.linspace(-3, 3, 601), np.linspace(-0.2, 0.2, 401)])  # fmt: skip


def _exprel_reference(x):
    with np.errstate(all="ignore"):
        return np.where(x == 0, 1.0, np.expm1(x) / np.where(x == 0, 1.0, x))


@pytest.mark.parametrize("target", ["numpy", pytest.param("cython", marks=pytest.mark.cython)])
def test_exprel_series_equals_expm1_over_x(target):
    start_scope()
    brian2.prefs.codegen.target = target
    try:
        group = NeuronGroup(_X.size, "x : 1\ny : 1", namespace={EXPREL_FUNCTION_NAME: make_exprel_function()})
        group.x = _X
        group.run_regularly(f"y = {EXPREL_FUNCTION_NAME}(x)", dt=0.1 * ms)
        run(0.1 * ms, namespace={})
        got = group.y[:]
    finally:
        brian2.prefs.codegen.target = "numpy"
    assert np.max(np.abs(got / _exprel_reference(_X) - 1)) < 1e-15
