"""nml2lut.refcompare: spike finding and comparison on synthetic data and against ../shared/refsims.

The synthetic tests pin every rule with figures worked out by hand.  The
reference tests check that the module reproduces the references' own
jLEMS-NEURON figures (spike counts, pairing, maximum spike-time difference,
sub-threshold difference), so that a run judged by it is judged by the rules
the references were made with.  The end-to-end test runs the shortest
reference simulation through `nml2lut.run_lems`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nml2lut.refcompare import (
    DEFAULT_MIN_TOLERANCE,
    Reference,
    compare_neuron,
    compare_run,
    compare_spikes,
    compare_traces,
    euler_tolerance,
    is_voltage,
    load_reference,
    neuron_tolerance,
    pair_spikes,
    threshold_crossings,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFSIMS = SHARED / "refsims"
CORPUS = SHARED / "corpus"
REFERENCES = sorted(REFSIMS.glob("*.npz")) if REFSIMS.is_dir() else []
needs_refsims = pytest.mark.skipif(
    not REFERENCES, reason="../shared/refsims not found (only in the development workspace)"
)
EX1_HH = REFSIMS / "NeuroML__NeuroML2__LEMSexamples__LEMS_NML2_Ex1_HH.xml.npz"


# ---------------------------------------------------------------- threshold crossings


def test_crossings_interpolate_linearly():
    t = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    v = np.array([-1.0, 3.0, 5.0, -2.0, 2.0])
    np.testing.assert_allclose(threshold_crossings(t, v, 0.0), [0.25, 3.5])
    np.testing.assert_allclose(threshold_crossings(t, v, 4.0), [1.5])


def test_crossings_count_only_upward_and_include_landing_on_threshold():
    # Upward only; a sample exactly at threshold after one below it counts, at that sample.
    t = np.arange(6.0)
    v = np.array([-1.0, 0.0, 1.0, 0.0, -1.0, -0.5])
    np.testing.assert_allclose(threshold_crossings(t, v, 0.0), [1.0])
    # Starting above threshold is no crossing.
    assert threshold_crossings(t, np.array([1.0, 2.0, 3.0, 2.0, 1.0, 0.5]), 0.0).size == 0
    # Touching the threshold from below counts; starting on it and rising does not.
    np.testing.assert_allclose(threshold_crossings(t[:3], np.array([-1.0, 0.0, -1.0]), 0.0), [1.0])
    assert threshold_crossings(t[:3], np.array([0.0, 1.0, 2.0]), 0.0).size == 0


def test_crossings_of_a_sine_are_its_upward_zeros():
    t = np.linspace(0.0, 0.05, 50001)
    v = 0.05 * np.sin(2 * np.pi * 100.0 * (t - 0.001))
    np.testing.assert_allclose(threshold_crossings(t, v, 0.0), [0.001, 0.011, 0.021, 0.031, 0.041], atol=1e-10)


def test_crossings_reject_mismatched_arrays():
    with pytest.raises(ValueError, match="1-D arrays of one length"):
        threshold_crossings([0.0, 1.0], [0.0], 0.0)


# ---------------------------------------------------------------- pairing and tolerances


def test_pairing_by_index_when_counts_match():
    d, idx, how = pair_spikes([1.0, 2.5, 3.0], [1.1, 2.0, 3.0])
    assert how == "index"
    np.testing.assert_allclose(d, [-0.1, 0.5, 0.0])
    np.testing.assert_array_equal(idx, [0, 1, 2])


def test_pairing_by_nearest_neighbour_from_the_shorter_train():
    # Ours is shorter: each of ours to the nearest reference spike.
    d, idx, how = pair_spikes([2.1], [1.0, 2.0, 3.0])
    assert how == "nearest-neighbour"
    np.testing.assert_allclose(d, [0.1])
    np.testing.assert_array_equal(idx, [1])
    # The reference is shorter: each reference spike to our nearest.
    d, idx, how = pair_spikes([1.0, 1.9, 5.0], [2.0, 4.0])
    np.testing.assert_allclose(d, [-0.1, 1.0])
    np.testing.assert_array_equal(idx, [0, 1])


def test_pairing_with_an_empty_train():
    d, idx, how = pair_spikes([], [1.0])
    assert (d.size, idx.size, how) == (0, 0, "none")


def test_euler_tolerance_uses_the_shorter_neighbouring_interval():
    ref = np.array([0.010, 0.060, 0.070, 0.170])  # intervals 50, 10, 100 ms
    np.testing.assert_allclose(euler_tolerance(ref) * 1e3, [0.5, 0.2, 0.2, 1.0])
    np.testing.assert_allclose(euler_tolerance(np.array([0.3])) * 1e3, [0.2])


def test_compare_spikes_passes_within_and_fails_beyond_each_spikes_tolerance():
    ref = np.array([0.010, 0.060, 0.160])  # tolerances 0.5, 0.5, 1.0 ms
    tol = euler_tolerance(ref)
    ok = compare_spikes(ref + [0.45e-3, -0.45e-3, 0.9e-3], ref, tol)
    assert ok.passed and ok.reason == "ok"
    assert ok.max_dt == pytest.approx(0.9e-3)
    assert ok.tolerance == pytest.approx(0.5e-3)
    bad = compare_spikes(ref + [0.0, 0.55e-3, 0.9e-3], ref, tol)
    assert not bad.passed and bad.worst == 1
    assert "spike 1" in bad.reason and "+0.55 ms" in bad.reason


def test_compare_spikes_fails_on_a_count_difference_however_close():
    r = compare_spikes([0.010, 0.020, 0.030], [0.010, 0.020], 1.0)
    assert not r.passed
    assert (r.n_ours, r.n_ref, r.pairing) == (3, 2, "nearest-neighbour")
    assert r.reason.startswith("spike count 3 vs jLEMS 2")


def test_compare_spikes_without_spikes_passes():
    r = compare_spikes([], [], 0.5e-3)
    assert r.passed and r.max_dt is None and r.reason == "no spikes in either"


def test_compare_spikes_rejects_a_tolerance_array_of_the_wrong_length():
    with pytest.raises(ValueError, match="one tolerance per reference spike"):
        compare_spikes([0.1], [0.1], np.array([1e-3, 1e-3]))


# ---------------------------------------------------------------- traces


def test_trace_comparison_interpolates_and_excludes_t0():
    t = np.linspace(0.0, 0.01, 101)
    y = t.copy()
    t_ref = np.linspace(0.0, 0.01, 11)
    y_ref = t_ref.copy()
    y_ref[0] = 5.0  # excluded
    y_ref[3] += 0.002
    r = compare_traces(t, y, t_ref, y_ref, first_spike=np.inf)
    assert r.max_abs == pytest.approx(0.002)
    assert r.rms == pytest.approx(0.002 / np.sqrt(10))
    assert r.n_points == 10
    assert r.max_abs_prespike == pytest.approx(0.002)


def test_trace_prespike_window_ends_two_ms_before_the_first_spike():
    t = np.linspace(0.0, 0.02, 2001)
    y = np.zeros_like(t)
    y_ref = np.where(t > 0.0075, 1.0, 0.0) + np.where((t > 0.004) & (t < 0.005), 0.1, 0.0)
    r = compare_traces(t, y, t, y_ref, first_spike=0.0095)
    assert r.max_abs == pytest.approx(1.0)
    assert r.max_abs_prespike == pytest.approx(0.1)
    assert compare_traces(t, y, t, y_ref, first_spike=0.001).max_abs_prespike is None
    assert compare_traces(t, y, t, y_ref).max_abs_prespike is None


def test_trace_comparison_ignores_reference_samples_after_the_run():
    t = np.linspace(0.0, 0.01, 11)
    t_ref = np.linspace(0.0, 0.02, 21)
    r = compare_traces(t, np.zeros(11), t_ref, np.where(t_ref > 0.0105, 9.0, 0.0))
    assert r.max_abs == 0.0 and r.n_points == 10


# ---------------------------------------------------------------- compare_run on a synthetic reference


def _spiking(t, times, width=0.5e-3):
    """-65 mV with 40 mV triangles of ``width`` starting at ``times``."""
    v = np.full_like(t, -0.065)
    for s in times:
        v += 0.105 * np.clip(1.0 - np.abs(t - s - width / 2) / (width / 2), 0.0, None)
    return v


def _reference(spike_starts, *, neuron_status="ok", neuron_dspk=0.4e-3) -> Reference:
    t = np.arange(0.0, 0.1, 2e-5)
    v = _spiking(t, spike_starts)
    q = "pop[0]/v"
    meta = {
        "file": "x/LEMS_x.xml",
        "quantities": [q, "pop[0]/caConc"],
        "thresholds_V": {q: 0.0},
        "status_neuron": neuron_status,
        "neuron_valid": neuron_status == "ok",
        "comparison": {q: {"maxdspk": neuron_dspk}},
    }
    return Reference(
        path=Path("x.npz"),
        file="x/LEMS_x.xml",
        meta=meta,
        t=t,
        traces={q: v, "pop[0]/caConc": np.full_like(t, 1e-4)},
        spikes={q: threshold_crossings(t, v, 0.0)},
        neuron_t=t if neuron_status == "ok" else None,
    )


def _run(times, dt=1e-6):
    t = np.arange(0.0, 0.1, dt)
    return {"t": t, "pop[0]/v": _spiking(t, times), "pop[0]/caConc": np.full_like(t, 1.1e-4)}


def test_compare_run_euler_criterion():
    ref = _reference([0.02, 0.05, 0.08])  # intervals 30 ms: tolerance 0.3 ms
    good, caconc = compare_run(_run([0.02025, 0.0498, 0.08]), ref, "euler")
    assert good.passed, good.reason
    assert good.spikes.n_ours == 3 and good.spikes.max_dt == pytest.approx(0.25e-3, abs=2e-5)
    assert caconc.passed is None and caconc.trace.max_abs == pytest.approx(1e-5)
    late = compare_run(_run([0.02035, 0.05, 0.08]), ref, "euler")[0]
    assert not late.passed and "spike 0" in late.reason


def test_compare_run_default_criterion_uses_twice_neurons_difference():
    ref = _reference([0.02, 0.05, 0.08], neuron_dspk=0.4e-3)  # tolerance 0.8 ms
    assert compare_run(_run([0.02075, 0.05, 0.08]), ref, "default")[0].passed
    r = compare_run(_run([0.02085, 0.05, 0.08]), ref, "default")[0]
    assert not r.passed and "2 x jLEMS-NEURON 0.4 ms" in r.note


def test_compare_run_default_criterion_falls_back_without_a_valid_neuron_run():
    ref = _reference([0.02, 0.05], neuron_status="ran-INVALID(export drops KS kinetics)", neuron_dspk=5e-3)
    tolerance, note = neuron_tolerance(ref, "pop[0]/v")
    assert tolerance == DEFAULT_MIN_TOLERANCE and "falls back to 0.5 ms" in note and "INVALID" in note
    assert not compare_run(_run([0.0206, 0.05]), ref, "default")[0].passed
    # A status other than "ok" wins over a stale neuron_valid flag.
    stale = _reference([0.02, 0.05], neuron_dspk=5e-3)
    stale.meta["status_neuron"] = "fail(rc=1)"
    assert neuron_tolerance(stale, "pop[0]/v")[0] == DEFAULT_MIN_TOLERANCE


def test_compare_run_reports_a_missing_quantity_a_nan_and_an_extra_spike():
    ref = _reference([0.02, 0.05])
    run = _run([0.02, 0.05])
    del run["pop[0]/caConc"]
    assert "missing" in compare_run(run, ref, "euler")[1].reason
    run = _run([0.02, 0.05])
    run["pop[0]/v"][5000:] = np.nan
    assert "not finite from t=5.000 ms" in compare_run(run, ref, "euler")[0].reason
    extra = compare_run(_run([0.02, 0.05, 0.07]), ref, "euler")[0]
    assert not extra.passed and extra.reason.startswith("spike count 3 vs jLEMS 2")


def test_compare_run_rejects_an_unknown_criterion_and_a_result_without_time():
    ref = _reference([0.02])
    with pytest.raises(ValueError, match="criterion must be"):
        compare_run(_run([0.02]), ref, "rk4")
    with pytest.raises(ValueError, match="no 't' entry"):
        compare_run({"pop[0]/v": np.zeros(3)}, ref, "euler")


def test_voltage_quantities_are_those_the_references_take_for_voltages():
    assert is_voltage("pop/0/cell/v") and is_voltage("c[0]/Vs") and is_voltage("c[0]/Vd")
    assert not is_voltage("pop/0/cell/caConc") and not is_voltage("pop[0]/vx")


def test_load_reference_rejects_other_npz(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, x=np.zeros(3))
    with pytest.raises(ValueError, match="not a refsims file"):
        load_reference(path)


# ---------------------------------------------------------------- the reference runs themselves


@needs_refsims
@pytest.mark.parametrize("path", REFERENCES, ids=lambda p: p.name.removesuffix(".xml.npz")[-40:])
def test_neuron_against_jlems_reproduces_the_reference_figures(path):
    ref = load_reference(path)
    figures = compare_neuron(ref)
    assert set(figures) == {q for q in ref.meta["comparison"] if "nspk" in ref.meta["comparison"][q]}
    for quantity, result in figures.items():
        meta = ref.meta["comparison"][quantity]
        assert [result.n_ref, result.n_ours] == meta["nspk"]
        assert result.max_dt == pytest.approx(meta["maxdspk"], rel=1e-12)
        assert result.pairing == meta["spk_match"].split(" ")[0]


@needs_refsims
def test_index_spike_counts_agree_with_the_meta():
    # INDEX.tsv's "spike_counts" column, e.g. "hhpop[0]/v=4/4@0mV;...", against the stored spike arrays.
    lines = (REFSIMS / "INDEX.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    column = header.index("spike_counts(jlems/neuron@threshold)")
    for line in lines[1:]:
        fields = line.split("\t")
        ref = load_reference(REFSIMS / (fields[0].replace("/", "__") + ".npz"))
        for entry in fields[column].split(";"):
            quantity, counts = entry.rsplit("=", 1)
            jlems, neuron = counts.split("@")[0].split("/")
            assert len(ref.spikes[quantity]) == int(jlems), (fields[0], quantity)
            if neuron != "-":
                assert len(ref.neuron_spikes[quantity]) == int(neuron), (fields[0], quantity)


@needs_refsims
@pytest.mark.parametrize("path", REFERENCES, ids=lambda p: p.name.removesuffix(".xml.npz")[-40:])
def test_crossings_of_the_stored_traces_reproduce_the_stored_spikes(path):
    # Spikes were found at full resolution; the stored traces are downsampled by a stride,
    # so the crossings of a stored trace are the stored ones to within one stored sample.
    ref = load_reference(path)
    step = ref.meta["dt_s"] * ref.meta["stride_jlems"]
    for quantity in ref.quantities:
        if is_voltage(quantity) and ref.threshold(quantity) is not None:
            found = threshold_crossings(ref.t, ref.traces[quantity], ref.threshold(quantity))
            assert found.size == ref.spikes[quantity].size
            atol = 1e-12 if ref.meta["stride_jlems"] == 1 else step
            np.testing.assert_allclose(found, ref.spikes[quantity], rtol=0, atol=atol)


@needs_refsims
@pytest.mark.parametrize("name", ["LEMS_NML2_Ex1_HH", "LEMS_ChannelTest"])
def test_subthreshold_difference_reproduces_the_meta_at_full_resolution(name):
    # Two references are stored at stride 1, so their max|dV| before the first spike is exact.
    (path,) = [p for p in REFERENCES if name in p.name]
    ref = load_reference(path)
    (quantity,) = [q for q in ref.quantities if is_voltage(q)]
    first = min(ref.spikes[quantity][0], ref.neuron_spikes[quantity][0])
    r = compare_traces(ref.neuron_t, ref.neuron_traces[quantity], ref.t, ref.traces[quantity], first)
    meta = ref.meta["comparison"][quantity]
    assert r.max_abs_prespike == pytest.approx(meta["maxabs_prespike"], rel=1e-9)
    assert r.max_abs == pytest.approx(meta["maxabs"], rel=1e-6)
    assert r.rms == pytest.approx(meta["rms"], rel=1e-6)


@needs_refsims
def test_neuron_tolerance_of_a_valid_and_an_invalid_reference():
    ex1 = load_reference(EX1_HH)
    tolerance, note = neuron_tolerance(ex1, "hhpop[0]/v")
    assert tolerance == pytest.approx(2 * 0.3722709394307494e-3) and "0.372 ms" in note
    ks = load_reference(REFSIMS / "NeuroML__NeuroML2__LEMSexamples__LEMS_NML2_Ex4_KS.xml.npz")
    tolerance, note = neuron_tolerance(ks, "hhpop[0]/v")
    assert tolerance == DEFAULT_MIN_TOLERANCE and "ran-INVALID" in note and "falls back" in note
    tissue = load_reference(REFSIMS / "NeuroML__NeuroML2__LEMSexamples__LEMS_NML2_Ex17_Tissue.xml.npz")
    tolerance, note = neuron_tolerance(tissue, "net1/hhpop[0]/v")
    assert tolerance == DEFAULT_MIN_TOLERANCE and "fail(rc=1)" in note


@needs_refsims
def test_jlems_against_itself_passes_both_criteria():
    ref = load_reference(EX1_HH)
    run = {"t": ref.t, **ref.traces}
    for criterion in ("euler", "default"):
        (result,) = compare_run(run, ref, criterion)
        assert result.passed and result.spikes.max_dt == pytest.approx(0.0, abs=1e-15)
        assert json.dumps(result.reason)


# ---------------------------------------------------------------- end to end


@needs_refsims
@pytest.mark.slow
def test_ex1_hh_through_run_lems_matches_jlems_with_euler():
    from nml2lut import run_lems

    ref = load_reference(EX1_HH)
    path = ref.lems_path(CORPUS)
    if not path.exists():
        pytest.skip(f"{path} not found (the corpus is only in the development workspace)")
    result = run_lems(path, mode="lut", target="numpy", method="euler")
    (verdict,) = compare_run(result, ref, "euler")
    assert verdict.passed, verdict.reason
    assert verdict.spikes.n_ours == 4
