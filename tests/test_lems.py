"""Cells and LEMS simulations: `load_cell`, `run_lems`, against jLEMS.

The reference for the package's own example cell (``example_channels/cells/LEMS_ca_cell.xml``:
HH channels, a Nernst calcium channel, a calcium pool and a calcium-activated
potassium channel) was made with jLEMS by ``validation/jlems_reference.py``
and is stored in ``tests/data/jlems_ca_cell.npz``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

import nml2lut
from nml2lut.errors import ModelError, TableError, UnitError, UnsupportedError
from nml2lut.refcompare import threshold_crossings
from nml2lut.tables import GridWarning

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "example_channels"
CA_LEMS = EXAMPLES / "cells" / "LEMS_ca_cell.xml"
CA_REFERENCE = Path(__file__).parent / "data" / "jlems_ca_cell.npz"
V = "pop[0]/v"
CA = "pop[0]/caConc"


@pytest.fixture(scope="module")
def reference():
    return np.load(CA_REFERENCE)


def _spike_tolerance(ref_spikes: np.ndarray) -> np.ndarray:
    """max(0.2 ms, 1% of the interspike interval before each spike)."""
    isi = np.diff(ref_spikes, prepend=0.0)
    return np.maximum(0.2e-3, 0.01 * isi)


# The first 150 ms hold 8 of the reference's 17 spikes and the pool's rise: enough, at half the cost.
SHORT = 0.15


def _reference_spikes(reference) -> np.ndarray:
    spikes = reference[f"spikes:{V}"]
    return spikes[spikes < SHORT - 1e-3]


@pytest.mark.parametrize("mode", ["exact", "lut"])
def test_ca_cell_matches_jlems_with_its_own_scheme(mode, reference):
    result = nml2lut.run_lems(CA_LEMS, mode=mode, method="euler", length=SHORT)
    ours = threshold_crossings(result["t"], result[V], 0.0)
    ref = _reference_spikes(reference)
    assert len(ref) >= 6, "the reference should show repetitive, adapting firing"
    assert len(ours) == len(ref)
    assert np.all(np.abs(ours - ref) <= _spike_tolerance(ref))
    # The pool follows jLEMS's to a few per cent of its peak.
    early = reference["t"] < SHORT - 1e-4
    ca = np.interp(reference["t"][early], result["t"], result[CA])
    assert np.max(np.abs(ca - reference[CA][early])) < 0.03 * np.max(reference[CA][early])
    # The calcium-activated gate really is driven by the pool.
    kca = result["pop[0]/biophysicalProperties/membraneProperties/kca_all/kca/m/q"]
    assert kca.max() > 10 * kca[0]


def test_ca_cell_exponential_euler_keeps_the_spike_count(reference):
    result = nml2lut.run_lems(CA_LEMS, length=SHORT, method=nml2lut.METHOD)
    ours = threshold_crossings(result["t"], result[V], 0.0)
    assert len(ours) == len(_reference_spikes(reference))
    np.testing.assert_allclose(result["spikes:pop[0]"], ours, atol=2e-5)
    euler = nml2lut.run_lems(CA_LEMS, length=SHORT, method="euler")
    assert np.max(np.abs(result[V] - euler[V])) > 1e-3  # without jLEMS's lags: another trajectory


def test_default_method_is_jlems_scheme():
    from nml2lut.lems import DEFAULT_LEMS_METHOD

    assert DEFAULT_LEMS_METHOD == "euler"
    default, run = nml2lut.run_lems(CA_LEMS, length=0.02, return_run=True)
    euler = nml2lut.run_lems(CA_LEMS, length=0.02, method="euler")
    assert set(default) == set(euler)
    for key in default:
        np.testing.assert_array_equal(default[key], euler[key])
    assert "v_lag3" in run.groups["pop"].variables  # the rates' three-step lag


def test_run_lems_step_override_converges():
    """A finer step samples more finely and moves the trace towards the converged one."""
    coarse = nml2lut.run_lems(CA_LEMS, mode="exact", method="euler", length=0.005)
    fine = nml2lut.run_lems(CA_LEMS, mode="exact", method="euler", length=0.005, step=2.5e-6)
    finer = nml2lut.run_lems(CA_LEMS, mode="exact", method="euler", length=0.005, step=1.25e-6)
    assert len(fine["t"]) == 2001  # 0 to 5 ms inclusive, as jLEMS samples
    np.testing.assert_allclose(np.diff(fine["t"]), 2.5e-6, rtol=1e-9)
    # Forward Euler's error halves with the step: compare each with the finest at the common times.
    at = finer["t"][::8]
    error_coarse = np.max(np.abs(coarse[V] - np.interp(coarse["t"], at, finer[V][::8])))
    error_fine = np.max(np.abs(fine[V][::2] - np.interp(fine["t"][::2], at, finer[V][::8])))
    assert 0 < error_fine < 0.6 * error_coarse
    with pytest.raises(ModelError, match="step must be a positive"):
        nml2lut.run_lems(CA_LEMS, length=0.005, step=0.0)
    with pytest.raises(ModelError, match="step must be a positive"):
        nml2lut.run_lems(CA_LEMS, length=0.005, step="fast")


def test_run_lems_returns_si_arrays_on_the_step_grid():
    result = nml2lut.run_lems(CA_LEMS, length=0.005)
    assert set(result) >= {"t", V, CA}
    np.testing.assert_allclose(np.diff(result["t"]), 1e-5, rtol=1e-9)
    assert len(result["t"]) == 501
    assert result["t"][-1] == pytest.approx(0.005)
    assert result[V][0] == pytest.approx(-0.065)
    assert result[CA][0] == pytest.approx(5e-5)


def test_load_cell_gives_a_ready_group():
    from brian2 import Network, SpikeMonitor, StateMonitor, defaultclock, ms, nA

    cell = nml2lut.load_cell(EXAMPLES / "cells" / "ca_cell.cell.nml", temperature="6.3degC")
    assert set(cell.channels) == {"na_all", "k_all", "leak_all", "ca_all", "kca_all"}
    defaultclock.dt = 0.01 * ms
    group = cell.neuron_group(2)
    group.I_inj = [0, 0.2] * nA
    spikes = SpikeMonitor(group)
    monitor = StateMonitor(group, ["v", "caConc"], record=True)
    Network(group, spikes, monitor).run(60 * ms)
    counts = np.bincount(np.asarray(spikes.i), minlength=2)
    assert counts[0] == 0 and counts[1] >= 2
    assert float(monitor.v[0][0]) == pytest.approx(-0.065)
    assert monitor.caConc[1].max() > 2 * monitor.caConc[0].max()


def _write(tmp_path: Path, body: str, name: str = "cell.nml") -> Path:
    for channel in ("hh_na", "hh_k", "hh_leak"):
        (tmp_path / f"{channel}.channel.nml").write_bytes((EXAMPLES / f"{channel}.channel.nml").read_bytes())
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def _cell(membrane: str, extra: str = "", intracellular: str = "") -> str:
    return f"""\
        <neuroml xmlns="http://www.neuroml.org/schema/neuroml2" id="doc">
            <include href="hh_na.channel.nml"/>
            <include href="hh_leak.channel.nml"/>
            {extra}
            <cell id="c">
                <morphology id="m">
                    <segment id="0"><proximal x="0" y="0" z="0" diameter="10"/><distal x="0" y="0" z="0" diameter="10"/></segment>
                </morphology>
                <biophysicalProperties id="b">
                    <membraneProperties>
                        {membrane}
                        <spikeThresh value="0mV"/>
                        <specificCapacitance value="1uF_per_cm2"/>
                        <initMembPotential value="-65mV"/>
                    </membraneProperties>
                    <intracellularProperties>{intracellular}</intracellularProperties>
                </biophysicalProperties>
            </cell>
        </neuroml>
        """


def test_missing_channel_names_the_density(tmp_path):
    path = _write(tmp_path, _cell('<channelDensity id="nope_all" ionChannel="nope" condDensity="1mS_per_cm2" erev="0mV"/>'))
    with pytest.raises(ModelError, match=r"cell\.nml:\d+: <channelDensity id='nope_all'>: no ion channel 'nope'"):
        nml2lut.load_cell(path)


_TAU_NEGATIVE_BELOW_120 = """
    <ionChannelHH id="odd" conductance="10pS" species="k">
        <gateHHtauInf id="n" instances="1">
            <timeCourse type="lineTau"/>
            <steadyState type="HHSigmoidVariable" rate="1" midpoint="-40mV" scale="10mV"/>
        </gateHHtauInf>
    </ionChannelHH>
    <ComponentType name="lineTau" extends="baseVoltageDepTime">
        <Constant name="MV" dimension="voltage" value="1mV"/>
        <Constant name="MS" dimension="time" value="1ms"/>
        <Requirement name="v" dimension="voltage"/>
        <Dynamics>
            <DerivedVariable name="t" exposure="t" dimension="time" value="MS * (v + 120*MV) / (10*MV)"/>
        </Dynamics>
    </ComponentType>
"""


def test_a_channel_invalid_below_minus_100_mV_falls_back_to_its_default_range(tmp_path):
    density = '<channelDensity id="odd_all" ionChannel="odd" condDensity="1mS_per_cm2" erev="-90mV" ion="k"/>'
    path = _write(tmp_path, _cell(density, extra=_TAU_NEGATIVE_BELOW_120))
    with pytest.warns(GridWarning, match=r"<channelDensity id='odd_all'>.*n/tau must be positive.*-100\.\.60 mV"):
        cell = nml2lut.load_cell(path)
    assert cell.channels["odd_all"].grid.v_min == pytest.approx(-0.1)
    # inside the channel's own range a bad curve is still an error, not a silent table
    bad = _TAU_NEGATIVE_BELOW_120.replace("v + 120*MV", "v + 80*MV")
    path = _write(tmp_path, _cell(density, extra=bad), name="bad.cell.nml")
    with pytest.raises(TableError, match=r"<channelDensity id='odd_all'>.*n/tau must be positive"):
        with pytest.warns(GridWarning):
            nml2lut.load_cell(path)


def test_unknown_density_type_names_the_element(tmp_path):
    path = _write(tmp_path, _cell('<channelDensityMagic id="x" ionChannel="hh_leak" condDensity="1mS_per_cm2"/>'))
    with pytest.raises(ModelError, match=r"<channelDensityMagic id='x'>: unknown membrane property"):
        nml2lut.load_cell(path)


def test_dimension_error_in_a_pool_names_it(tmp_path):
    pool = """
        <ComponentType name="badPool" extends="concentrationModel">
            <Parameter name="tau" dimension="time"/>
            <Requirement name="iCa" dimension="current"/>
            <Dynamics>
                <StateVariable name="concentration" dimension="concentration" exposure="concentration"/>
                <StateVariable name="extConcentration" dimension="concentration" exposure="extConcentration"/>
                <TimeDerivative variable="concentration" value="iCa * tau"/>
            </Dynamics>
        </ComponentType>
        <concentrationModel id="pool" type="badPool" ion="ca" tau="10ms"/>"""
    species = ('<species id="ca" ion="ca" concentrationModel="pool" initialConcentration="5e-5mM" '
               'initialExtConcentration="2mM"/>')  # fmt: skip
    path = _write(tmp_path, _cell('<channelDensity id="l" ionChannel="hh_leak" condDensity="1mS_per_cm2" erev="-60mV"/>',
                                  pool, species))  # fmt: skip
    with pytest.raises(UnitError, match=r"<concentrationModel id='pool'>: dconcentration/dt is a .*expected"):
        nml2lut.load_cell(path)


def test_two_segments_are_refused(tmp_path):
    text = _cell('<channelDensity id="l" ionChannel="hh_leak" condDensity="1mS_per_cm2" erev="-60mV"/>').replace(
        "</segment>",
        '</segment><segment id="1"><parent segment="0"/><distal x="10" y="0" z="0" diameter="1"/></segment>', 1)
    path = _write(tmp_path, text)
    with pytest.raises(UnsupportedError, match="2 segments; only single-compartment"):
        nml2lut.load_cell(path)


def test_nernst_without_external_calcium_warns_and_carries_no_current(tmp_path):
    path = _write(tmp_path, _cell('<channelDensityNernst id="n" ionChannel="hh_na" condDensity="1mS_per_cm2" ion="ca"/>'))
    from nml2lut.cell import NernstWarning

    with pytest.warns(NernstWarning, match="no external calcium"):
        cell = nml2lut.load_cell(path, temperature="20degC")
    assert "iDensity_n = gDensity_n*(E_n - v)" in str(cell.equations)
    assert "gDensity_n = 0*g_n" in str(cell.equations)


def _lems(tmp_path: Path, network: str, simulation: str = "") -> Path:
    cell = _write(tmp_path, _cell('<channelDensity id="l" ionChannel="hh_leak" condDensity="1mS_per_cm2" erev="-60mV"/>'))
    text = f"""\
        <Lems>
            <Target component="sim"/>
            <Include file="Cells.xml"/>
            <Include file="{cell.name}"/>
            {network}
            <Simulation id="sim" length="2ms" step="0.01ms" target="net">
                {simulation or '<OutputFile id="o" fileName="o.dat"><OutputColumn id="v" quantity="p[0]/v"/></OutputFile>'}
            </Simulation>
        </Lems>
        """
    path = tmp_path / "LEMS_test.xml"
    path.write_text(textwrap.dedent(text))
    return path


def test_inputs_follow_the_core_types(tmp_path):
    network = """
        <pulseGenerator id="pulse" delay="0.5ms" duration="1ms" amplitude="0.01nA"/>
        <rampGenerator id="ramp" delay="0ms" duration="2ms" startAmplitude="0nA" finishAmplitude="0.02nA" baselineAmplitude="0nA"/>
        <network id="net">
            <population id="p" component="c" size="3"/>
            <explicitInput target="p[1]" input="pulse"/>
            <inputList id="il" component="ramp" population="p">
                <input id="0" target="../p/2/c" destination="synapses"/>
            </inputList>
        </network>"""
    simulation = """<OutputFile id="o" fileName="o.dat">
            <OutputColumn id="a" quantity="p[0]/iSyn"/><OutputColumn id="b" quantity="p[1]/iSyn"/>
            <OutputColumn id="c" quantity="p/2/c/iSyn"/></OutputFile>"""
    result = nml2lut.run_lems(_lems(tmp_path, network, simulation))
    t = result["t"]
    np.testing.assert_array_equal(result["p[0]/iSyn"], 0.0)
    on = (t + 1e-5 >= 0.5e-3 - 1e-12) & (t + 1e-5 < 1.5e-3 - 1e-12)
    np.testing.assert_allclose(result["p[1]/iSyn"], np.where(on, 1e-11, 0.0), atol=1e-20)
    ramp = np.where(t + 1e-5 < 2e-3 - 1e-12, 2e-11 * (t + 1e-5) / 2e-3, 0.0)  # back to baseline at the end
    np.testing.assert_allclose(result["p/2/c/iSyn"], ramp, rtol=1e-9, atol=1e-22)


def test_unsupported_input_and_unknown_quantity_are_named(tmp_path):
    network = """
        <voltageClampTriple id="vc" active="1" delay="0ms" duration="1ms" conditioningVoltage="-70mV"
            testingVoltage="0mV" returnVoltage="-70mV" simpleSeriesResistance="1Mohm"/>
        <network id="net"><population id="p" component="c" size="1"/>
            <explicitInput target="p[0]" input="vc"/></network>"""
    with pytest.raises(UnsupportedError, match=r"<voltageClampTriple id='vc'>: input of type 'voltageClampTriple'"):
        nml2lut.run_lems(_lems(tmp_path, network))
    network = '<network id="net"><population id="p" component="c" size="1"/></network>'
    simulation = '<OutputFile id="o" fileName="o.dat"><OutputColumn id="x" quantity="p[0]/nothing"/></OutputFile>'
    with pytest.raises(ModelError, match="no quantity 'nothing'"):
        nml2lut.run_lems(_lems(tmp_path, network, simulation))
    with pytest.raises(ModelError, match="outside population 'p'"):
        nml2lut.run_lems(_lems(tmp_path, network.replace("</network>",
                                                         '<explicitInput target="p[3]" input="x"/></network>')))


# Cell 0, driven by a pulse, acts on cell 1 through a graded synapse.
GRADED_NETWORK = """
    <gradedSynapse id="g" conductance="5nS" delta="5mV" Vth="-62mV" k="0.5per_ms" erev="-80mV"/>
    <silentSynapse id="s"/>
    <pulseGenerator id="pulse" delay="0ms" duration="2ms" amplitude="0.05nA"/>
    <network id="net">
        <population id="p" component="c" size="2"/>
        <explicitInput target="p[0]" input="pulse"/>
        <continuousProjection id="proj" presynapticPopulation="p" postsynapticPopulation="p">
            <continuousConnection id="0" preCell="0" postCell="1" preComponent="s" postComponent="g"/>
        </continuousProjection>
    </network>"""


def test_graded_synapse_couples_two_cells(tmp_path):
    network = GRADED_NETWORK
    simulation = """<OutputFile id="o" fileName="o.dat">
            <OutputColumn id="a" quantity="p[0]/v"/><OutputColumn id="b" quantity="p[1]/v"/>
            <OutputColumn id="c" quantity="p[1]/iSyn"/></OutputFile>"""
    result = nml2lut.run_lems(_lems(tmp_path, network, simulation), method="euler")
    # The presynaptic cell depolarises past Vth, the synapse opens and pulls the other cell towards -80 mV.
    assert result["p[0]/v"].max() > -0.055
    assert result["p[1]/iSyn"].min() < -1e-13
    assert result["p[1]/v"][-1] < -0.0601


def test_graded_synapse_quantities_are_recorded_as_jlems_names_them(tmp_path):
    network = GRADED_NETWORK
    columns = "".join(f'<OutputColumn id="{q}" quantity="p[1]/g/{q}"/>' for q in ("i", "s", "inf", "tau"))
    simulation = f"""<OutputFile id="o" fileName="o.dat">
            <OutputColumn id="a" quantity="p[0]/v"/><OutputColumn id="b" quantity="p[1]/v"/>{columns}</OutputFile>"""
    path = _lems(tmp_path, network, simulation)
    for method in ("euler", nml2lut.METHOD):
        result = nml2lut.run_lems(path, method=method)
        v_pre, v_post = result["p[0]/v"], result["p[1]/v"]
        i, s, inf, tau = (result[f"p[1]/g/{q}"] for q in ("i", "s", "inf", "tau"))
        assert s.max() > 0.05 and i.min() < -1e-13
        np.testing.assert_allclose(tau, (1 - inf) / 500.0, rtol=1e-12)
        # jLEMS records the current it computed in the step, from the state the step started from.
        np.testing.assert_allclose(i[1:], 5e-9 * s[:-1] * (-0.08 - v_post[:-1]), rtol=1e-9, atol=1e-24)
        assert i[0] == 0.0
        if method == nml2lut.METHOD:  # no lag: the activation of the peer's voltage as recorded
            np.testing.assert_allclose(inf, 1 / (1 + np.exp((-0.062 - v_pre) / 0.005)), rtol=1e-9)
    bad = simulation.replace('quantity="p[1]/g/tau"', 'quantity="p[1]/g/conductance"')
    with pytest.raises(ModelError, match="gradedSynapse 'g' has no quantity 'conductance'"):
        nml2lut.run_lems(_lems(tmp_path, network, bad))


@pytest.mark.cython
def test_targets_agree(reference):
    runs = {target: nml2lut.run_lems(CA_LEMS, target=target, length=0.03) for target in ("numpy", "cython")}
    np.testing.assert_allclose(runs["cython"][V], runs["numpy"][V], rtol=0, atol=1e-9)


@pytest.mark.cpp_standalone
def test_cpp_standalone_agrees(tmp_path):
    numpy_run = nml2lut.run_lems(CA_LEMS, length=0.03)
    standalone = nml2lut.run_lems(CA_LEMS, target="cpp_standalone", length=0.03, build_dir=tmp_path / "build")
    np.testing.assert_allclose(standalone[V], numpy_run[V], rtol=0, atol=1e-9)
    np.testing.assert_allclose(standalone["spikes:pop[0]"], numpy_run["spikes:pop[0]"], atol=1e-12)


def test_simulate_command_writes_jlems_style_files(tmp_path):
    from nml2lut.cli import main

    out = tmp_path / "out"
    assert main(["simulate", str(CA_LEMS), "-o", str(out), "--length", "40", "--plot", str(tmp_path / "p.png")]) == 0
    table = np.loadtxt(out / "ca_cell.dat")
    assert table.shape == (4001, 4) and table[-1, 0] == pytest.approx(0.04)
    np.testing.assert_allclose(table[1:, 0] - table[:-1, 0], 1e-5, rtol=1e-6)
    spikes = np.loadtxt(out / "ca_cell.spikes", ndmin=2)
    assert spikes.shape[1] == 2 and np.all(spikes[:, 1] == 0)
    np.testing.assert_allclose(spikes[:, 0], threshold_crossings(table[:, 0], table[:, 1], 0.0), atol=2e-5)
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_simulate_command_step_option(tmp_path):
    from nml2lut.cli import main

    out = tmp_path / "out"
    assert main(["simulate", str(CA_LEMS), "-o", str(out), "--length", "2", "--step", "0.005"]) == 0
    table = np.loadtxt(out / "ca_cell.dat")
    assert table.shape == (401, 4)
    np.testing.assert_allclose(table[1:, 0] - table[:-1, 0], 5e-6, rtol=1e-6)


def test_simulate_refuses_output_names_outside_the_directory(tmp_path):
    from nml2lut.cli import main

    network = '<network id="net"><population id="p" component="c" size="1"/></network>'
    simulation = '<OutputFile id="o" fileName="../escape.dat"><OutputColumn id="v" quantity="p[0]/v"/></OutputFile>'
    path = _lems(tmp_path, network, simulation)
    assert main(["simulate", str(path), "-o", str(tmp_path / "out")]) == 1
    assert not (tmp_path / "escape.dat").exists()


def test_time_course_reading_its_gates_rates_matches_jlems():
    """A timeCourse child reads its gate's alpha and beta as the gate computed them a step before (jLEMS)."""
    reference = np.load(Path(__file__).parent / "data" / "jlems_tau_cell.npz")
    m = "pop[0]/biophys/membraneProperties/na_all/tau_na/m/q"
    result = nml2lut.run_lems(EXAMPLES / "cells" / "LEMS_tau_cell.xml", mode="exact", method="euler")
    n = min(len(result["t"]), len(reference["t"]))
    # Without the step's lag: 0.52 mV and 0.0085 here; with it, jLEMS's output to its printed digits.
    assert np.max(np.abs(result[V][:n] - reference[V][:n])) < 1e-7
    assert np.max(np.abs(result[m][:n] - reference[m][:n])) < 1e-6
    assert len(reference[f"spikes:{V}"]) == 3
    gates = nml2lut.load_channel(EXAMPLES / "cells" / "tau_na.channel.nml").model.gates
    assert [gate.stale_rates for gate in gates] == [(("tau", False),), (("tau", False),)]


def test_network_with_chemical_and_electrical_synapses_matches_jlems():
    """Cell 0 excites cell 1 (expTwoSynapse, delay 2 ms), inhibits cell 2 (alphaSynapse); 1 and 2 share a gap junction."""
    reference = np.load(Path(__file__).parent / "data" / "jlems_ca_network.npz")
    result = nml2lut.run_lems(EXAMPLES / "cells" / "LEMS_ca_network.xml", method="euler")
    for cell in range(3):
        key = f"pop[{cell}]/v"
        ours, ref = threshold_crossings(result["t"], result[key], 0.0), reference[f"spikes:{key}"]
        assert len(ours) == len(ref)
        assert np.all(np.abs(ours - ref) <= _spike_tolerance(ref))
    assert len(reference["spikes:pop[1]/v"]) >= 3  # the excitation makes cell 1 fire
    assert len(reference["spikes:pop[2]/v"]) == 0
    # Cell 2 only sees the inhibition and the gap junction: subthreshold, as in jLEMS to a fraction of a mV.
    v2 = np.interp(reference["t"], result["t"], result["pop[2]/v"])
    assert np.max(np.abs(v2 - reference["pop[2]/v"])) < 0.5e-3
    assert np.ptp(reference["pop[2]/v"]) > 2e-3


def test_run_lems_tables_meet_its_own_tighter_tolerance_by_default():
    from nml2lut.lems import LEMS_TOLERANCE

    _, run = nml2lut.run_lems(CA_LEMS, length=1e-4, return_run=True)
    _, coarse = nml2lut.run_lems(CA_LEMS, length=1e-4, tolerance=1e-4, return_run=True)
    (cell,), (coarse_cell,) = run.cells.values(), coarse.cells.values()
    tables = [t for c in cell.channels.values() for t in (c.tables, c.tables2d) if t is not None]
    assert any(c.tables2d is not None for c in cell.channels.values())  # the calcium-dependent channel
    assert {t.tolerance for t in tables} == {LEMS_TOLERANCE} and LEMS_TOLERANCE == 1e-6
    assert 0 < cell.max_error <= LEMS_TOLERANCE < coarse_cell.max_error <= 1e-4
    coarse_tables = [t for c in coarse_cell.channels.values() for t in (c.tables, c.tables2d) if t is not None]
    assert sum(t.values.size if hasattr(t, "values") else t.table.values.size for t in tables) > 5 * sum(
        t.values.size if hasattr(t, "values") else t.table.values.size for t in coarse_tables
    )


def test_simulate_command_passes_its_tolerance(tmp_path, monkeypatch):
    import nml2lut.lems
    from nml2lut.cli import main

    seen = []
    real = nml2lut.lems.run_lems

    def spy(*args, **kwargs):
        seen.append(kwargs["tolerance"])
        return real(*args, **kwargs)

    monkeypatch.setattr(nml2lut.lems, "run_lems", spy)
    assert main(["simulate", str(CA_LEMS), "-o", str(tmp_path / "a"), "--length", "0.1"]) == 0
    assert main(["simulate", str(CA_LEMS), "-o", str(tmp_path / "b"), "--length", "0.1", "--tolerance", "1e-4"]) == 0
    assert seen == [nml2lut.lems.LEMS_TOLERANCE, 1e-4]
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", str(CA_LEMS), "--tolerance", "-1"])
    assert exit_info.value.code == 2 and len(seen) == 2


def test_spike_times_are_the_first_samples_past_the_threshold_as_jlems_writes_them():
    """jLEMS's EventOutputFile holds the time of the first sample where v > spikeThresh."""
    result = nml2lut.run_lems(CA_LEMS, length=0.05)
    t, v = result["t"], result[V]
    first_above = np.nonzero((v[:-1] <= 0.0) & (v[1:] > 0.0))[0] + 1
    assert first_above.size >= 2
    np.testing.assert_allclose(result["spikes:pop[0]"], t[first_above], rtol=0, atol=1e-12)
