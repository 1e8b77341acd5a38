"""refcompare: simulations of nml2lut against the jLEMS and NEURON reference runs of ``shared/refsims``.

A reference (one ``.npz`` per LEMS simulation) holds jLEMS's traces, its spike
times (upward threshold crossings, linearly interpolated), NEURON's traces and
spike times where NEURON ran, and a JSON ``meta`` record with the simulation's
length and step, the thresholds and a jLEMS-NEURON comparison.  This module
reads one, finds spikes in a trace the way the references were made, and
compares a run (the dict that `nml2lut.run_lems` returns) with it, quantity by
quantity, under one of two criteria:

``"euler"``
    The run used jLEMS's own scheme (forward Euler, same step): same spike
    count, and every spike within ``max(0.2 ms, 1% of the local interspike
    interval)`` of jLEMS's.
``"default"``
    The run used its default method: same spike count, and every spike within
    ``max(0.5 ms, 2 x the jLEMS-NEURON maximum spike-time difference)`` of
    jLEMS's; where NEURON did not run or its result is marked invalid, the
    tolerance falls back to 0.5 ms and the result says so.

Traces other than membrane potentials are compared (max and rms difference)
but not judged.  Nothing here imports brian2.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = [
    "EULER_MIN_TOLERANCE",
    "EULER_ISI_FRACTION",
    "DEFAULT_MIN_TOLERANCE",
    "NEURON_FACTOR",
    "PRESPIKE_MARGIN",
    "Reference",
    "SpikeComparison",
    "TraceComparison",
    "QuantityResult",
    "load_reference",
    "is_voltage",
    "threshold_crossings",
    "pair_spikes",
    "euler_tolerance",
    "neuron_tolerance",
    "compare_spikes",
    "compare_traces",
    "compare_run",
    "compare_neuron",
]

EULER_MIN_TOLERANCE = 0.2e-3
"""Smallest per-spike tolerance (s) of the ``"euler"`` criterion."""
EULER_ISI_FRACTION = 0.01
"""Fraction of the local interspike interval allowed by the ``"euler"`` criterion."""
DEFAULT_MIN_TOLERANCE = 0.5e-3
"""Smallest tolerance (s) of the ``"default"`` criterion, and its value without a valid NEURON run."""
NEURON_FACTOR = 2.0
"""Multiple of the jLEMS-NEURON spike-time difference allowed by the ``"default"`` criterion."""
PRESPIKE_MARGIN = 2e-3
"""Sub-threshold differences are measured up to this long (s) before the first spike, as the references do."""
FALLBACK_THRESHOLD = 0.0
"""Threshold (V) for a voltage trace whose reference never crossed one (``thresholds_V`` None)."""

Criterion = Literal["euler", "default"]
_VOLTAGE_SUFFIXES = ("/v", "/Vs", "/Vd")


@dataclass(frozen=True)
class Reference:
    """One reference simulation: jLEMS's traces and spikes, NEURON's where it ran, and the meta record.

    Attributes
    ----------
    path : Path
        The ``.npz`` file.
    file : str
        The LEMS file relative to the corpus (``<owner>__<repo>/<path>``).
    meta : dict
        The decoded ``meta:json``.
    t : ndarray
        jLEMS's (possibly downsampled) time base, s.
    traces, spikes : dict
        jLEMS's traces (SI) and spike times (s) by quantity path; a quantity
        without a threshold has an empty spike array.
    neuron_t, neuron_traces, neuron_spikes
        The same for NEURON, or None / empty where NEURON did not run.
    """

    path: Path
    file: str
    meta: dict
    t: np.ndarray
    traces: dict[str, np.ndarray]
    spikes: dict[str, np.ndarray]
    neuron_t: np.ndarray | None = None
    neuron_traces: dict[str, np.ndarray] = field(default_factory=dict)
    neuron_spikes: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def quantities(self) -> list[str]:
        """The recorded quantity paths, in the order of the OutputFile."""
        return list(self.meta.get("quantities") or self.traces)

    @property
    def neuron_valid(self) -> bool:
        """Whether NEURON ran and its result may serve as a reference."""
        status = str(self.meta.get("status_neuron", ""))
        return bool(self.meta.get("neuron_valid")) and status.startswith("ok") and self.neuron_t is not None

    def threshold(self, quantity: str) -> float | None:
        """The spike threshold (V) used for ``quantity``, None where jLEMS crossed neither 0 nor -20 mV."""
        return (self.meta.get("thresholds_V") or {}).get(quantity)

    def lems_path(self, corpus: str | Path) -> Path:
        """The LEMS file in a corpus folder (``corpus/<owner>__<repo>/<path>``)."""
        return Path(corpus) / self.file


def _array(value) -> np.ndarray | None:
    """An npz entry as a float array; None for a stored None (object array holding None)."""
    if value.dtype == object:
        item = value.item() if value.shape == () else value
        return None if item is None else np.asarray(item, dtype=float)
    return np.asarray(value, dtype=float)


def load_reference(path: str | Path) -> Reference:
    """Read a reference ``.npz`` of ``shared/refsims``.

    Parameters
    ----------
    path : str or Path
        ``<corpus path with / replaced by __>.npz``.

    Returns
    -------
    Reference

    Examples
    --------
    >>> path = "../shared/refsims/NeuroML__NeuroML2__LEMSexamples__LEMS_NML2_Ex1_HH.xml.npz"
    >>> ref = load_reference(path)  # doctest: +SKIP
    >>> ref.quantities, len(ref.spikes["hhpop[0]/v"])  # doctest: +SKIP
    (['hhpop[0]/v'], 4)
    """
    path = Path(path)
    with np.load(path, allow_pickle=True) as data:
        entries = {key: data[key] for key in data.files}
    if "meta:json" not in entries or "t" not in entries:
        raise ValueError(f"{path}: not a refsims file: expected the entries 't' and 'meta:json'")
    meta = json.loads(str(entries.pop("meta:json")))
    jlems: dict[str, dict] = {"": {}, "spikes:": {}}
    neuron: dict[str, dict] = {"": {}, "spikes:": {}}
    for key, value in entries.items():
        side, name = (neuron, key[len("neuron:") :]) if key.startswith("neuron:") else (jlems, key)
        kind = "spikes:" if name.startswith("spikes:") else ""
        side[kind][name[len(kind) :]] = _array(value)
    t = jlems[""].pop("t")
    neuron_t = neuron[""].pop("t", None)
    file = meta.get("file") or path.name.removesuffix(".npz").replace("__", "/", 1)
    return Reference(
        path=path,
        file=file,
        meta=meta,
        t=t,
        traces=jlems[""],
        spikes={q: (s if s is not None else np.empty(0)) for q, s in jlems["spikes:"].items()},
        neuron_t=neuron_t,
        neuron_traces=neuron[""],
        neuron_spikes={q: (s if s is not None else np.empty(0)) for q, s in neuron["spikes:"].items()},
    )


def is_voltage(quantity: str) -> bool:
    """Whether a quantity path is a membrane potential (ends in ``/v``, ``/Vs`` or ``/Vd``), as in the references."""
    return quantity.endswith(_VOLTAGE_SUFFIXES)


def threshold_crossings(t: np.ndarray, v: np.ndarray, threshold: float) -> np.ndarray:
    """Upward crossings of ``threshold``, linearly interpolated between samples, as in ``shared/refsims``.

    A crossing lies between samples ``i`` and ``i + 1`` where ``v[i] < threshold <= v[i + 1]``;
    its time is where the straight line between the two samples meets the threshold.

    Parameters
    ----------
    t, v : array_like
        Times (s) and values, same length.
    threshold : float
        In the units of ``v``.

    Returns
    -------
    ndarray
        Crossing times, increasing.

    Examples
    --------
    >>> threshold_crossings([0.0, 1.0, 2.0, 3.0], [-1.0, 1.0, -1.0, 3.0], 0.0)
    array([0.5 , 2.25])
    """
    t = np.asarray(t, dtype=float)
    v = np.asarray(v, dtype=float)
    if t.shape != v.shape or t.ndim != 1:
        raise ValueError(f"t and v must be 1-D arrays of one length, got shapes {t.shape} and {v.shape}")
    i = np.flatnonzero((v[:-1] < threshold) & (v[1:] >= threshold))
    return t[i] + (threshold - v[i]) / (v[i + 1] - v[i]) * (t[i + 1] - t[i])


def pair_spikes(ours: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """Pair two spike trains as the references do: by index when the counts match, else by nearest neighbour.

    With different counts, every spike of the shorter train is paired with the
    nearest spike of the longer one (the rule that reproduces the references'
    jLEMS-NEURON figures).

    Returns
    -------
    differences : ndarray
        ``ours - ref`` per pair (s).
    ref_index : ndarray of int
        The index in ``ref`` of each pair.
    pairing : str
        ``"index"``, ``"nearest-neighbour"`` or ``"none"`` (a train is empty).
    """
    ours = np.asarray(ours, dtype=float)
    ref = np.asarray(ref, dtype=float)
    if ours.size == ref.size:
        return ours - ref, np.arange(ref.size), "index" if ref.size else "none"
    if ours.size == 0 or ref.size == 0:
        return np.empty(0), np.empty(0, dtype=int), "none"
    if ours.size < ref.size:
        j = np.abs(ref[None, :] - ours[:, None]).argmin(axis=1)
        return ours - ref[j], j, "nearest-neighbour"
    j = np.abs(ours[None, :] - ref[:, None]).argmin(axis=1)
    return ours[j] - ref, np.arange(ref.size), "nearest-neighbour"


def euler_tolerance(ref: np.ndarray) -> np.ndarray:
    """Per-spike tolerance (s) of the ``"euler"`` criterion: ``max(0.2 ms, 1% of the local interspike interval)``.

    The local interval of a spike is the shorter of the intervals to its
    neighbours in the reference train (the only one for the first and last
    spikes); a lone spike has none and gets 0.2 ms.

    Examples
    --------
    >>> euler_tolerance(np.array([0.010, 0.060, 0.070])) * 1e3
    array([0.5, 0.2, 0.2])
    """
    ref = np.asarray(ref, dtype=float)
    isi = np.diff(ref)
    before = np.concatenate([[np.inf], isi])
    after = np.concatenate([isi, [np.inf]])
    local = np.minimum(before, after)
    local[~np.isfinite(local)] = 0.0
    return np.maximum(EULER_MIN_TOLERANCE, EULER_ISI_FRACTION * local)


def neuron_tolerance(reference: Reference, quantity: str) -> tuple[float, str]:
    """Tolerance (s) of the ``"default"`` criterion for one quantity, and a note saying where it came from.

    ``max(0.5 ms, 2 x the jLEMS-NEURON maximum spike-time difference)`` as the
    reference's meta records it; 0.5 ms where NEURON did not run, is marked
    invalid, or has no figure for the quantity.
    """
    if not reference.neuron_valid:
        status = reference.meta.get("status_neuron") or "missing"
        return DEFAULT_MIN_TOLERANCE, f"NEURON reference unusable ({status}): tolerance falls back to 0.5 ms"
    record = (reference.meta.get("comparison") or {}).get(quantity) or {}
    difference = record.get("maxdspk")
    if difference is None or not np.isfinite(difference):
        return DEFAULT_MIN_TOLERANCE, "no jLEMS-NEURON spike-time difference for this quantity: tolerance 0.5 ms"
    tolerance = max(DEFAULT_MIN_TOLERANCE, NEURON_FACTOR * difference)
    return tolerance, f"max(0.5 ms, 2 x jLEMS-NEURON {difference * 1e3:.3g} ms)"


@dataclass(frozen=True)
class SpikeComparison:
    """Two spike trains compared: counts, pairing, worst difference, and the verdict against a tolerance.

    ``max_dt`` is the largest ``|ours - ref|`` over the pairs (s), None without
    pairs; ``tolerance`` the smallest per-spike tolerance (s); ``worst`` the
    reference index of the pair that is furthest beyond its tolerance (or
    closest to it).
    """

    n_ours: int
    n_ref: int
    pairing: str
    max_dt: float | None
    tolerance: float | None
    worst: int | None
    passed: bool
    reason: str


def compare_spikes(ours, ref, tolerance: float | np.ndarray) -> SpikeComparison:
    """Compare spike trains: same count, and every pair within its tolerance.

    Parameters
    ----------
    ours, ref : array_like
        Spike times (s).
    tolerance : float or ndarray
        One tolerance (s), or one per reference spike.

    Examples
    --------
    >>> r = compare_spikes([0.0101, 0.0203], [0.0100, 0.0200], 0.2e-3)
    >>> r.passed, round(r.max_dt * 1e3, 3)
    (False, 0.3)
    """
    ours = np.asarray(ours, dtype=float)
    ref = np.asarray(ref, dtype=float)
    given = np.asarray(tolerance, dtype=float)
    if given.ndim and given.shape != ref.shape:
        raise ValueError(f"one tolerance per reference spike expected ({ref.size}), got {given.shape}")
    per_spike = np.broadcast_to(given, ref.shape)
    differences, index, pairing = pair_spikes(ours, ref)
    max_dt = float(np.abs(differences).max()) if differences.size else None
    tol = float(given) if not given.ndim else (float(given.min()) if given.size else None)
    worst = None
    if differences.size:
        # The tiny floor keeps a zero tolerance (NEURON self-check) from dividing by zero.
        ratio = np.abs(differences) / np.maximum(per_spike[index], 1e-300)
        worst = int(index[ratio.argmax()])
    if ours.size != ref.size:
        reason = f"spike count {ours.size} vs jLEMS {ref.size}"
        if max_dt is not None:
            reason += f" (nearest-neighbour max |dt| {max_dt * 1e3:.3g} ms)"
        return SpikeComparison(ours.size, ref.size, pairing, max_dt, tol, worst, False, reason)
    if worst is None:
        return SpikeComparison(0, 0, pairing, None, tol, None, True, "no spikes in either")
    k = int(np.flatnonzero(index == worst)[0])
    if abs(differences[k]) <= per_spike[worst]:
        return SpikeComparison(ours.size, ref.size, pairing, max_dt, tol, worst, True, "ok")
    reason = (
        f"spike {worst} (jLEMS t={ref[worst] * 1e3:.3f} ms) differs by {differences[k] * 1e3:+.3g} ms,"
        f" tolerance {per_spike[worst] * 1e3:.3g} ms"
    )
    return SpikeComparison(ours.size, ref.size, pairing, max_dt, tol, worst, False, reason)


@dataclass(frozen=True)
class TraceComparison:
    """A trace against a reference trace on the reference's time base (t = 0 excluded), in the trace's SI unit.

    ``max_abs_prespike`` is the largest difference before ``first spike -
    2 ms`` (the earlier first spike of the two trains; the whole trace without
    spikes), None where that window is empty or no spike times were given.
    """

    max_abs: float
    rms: float
    max_abs_prespike: float | None
    n_points: int


def compare_traces(t, y, t_ref, y_ref, first_spike: float | None = None) -> TraceComparison:
    """Interpolate ``y(t)`` linearly onto ``t_ref`` and measure the difference from ``y_ref``.

    Reference samples at t = 0 and beyond the end of ``t`` are left out.

    Parameters
    ----------
    t, y : array_like
        The trace to judge.
    t_ref, y_ref : array_like
        The reference.
    first_spike : float, optional
        Time (s) of the earlier first spike of the two traces; ``inf`` when
        neither spikes.  Without it ``max_abs_prespike`` is None.
    """
    t, y = np.asarray(t, dtype=float), np.asarray(y, dtype=float)
    t_ref, y_ref = np.asarray(t_ref, dtype=float), np.asarray(y_ref, dtype=float)
    if t.shape != y.shape or t_ref.shape != y_ref.shape:
        raise ValueError(f"time and value arrays differ in shape: {t.shape}/{y.shape}, {t_ref.shape}/{y_ref.shape}")
    end = t[-1] + 1e-9 * max(1.0, abs(t[-1]))
    keep = (t_ref > 0) & (t_ref <= end)
    if not keep.any():
        raise ValueError("the trace and the reference share no time after t = 0")
    difference = np.abs(np.interp(t_ref[keep], t, y) - y_ref[keep])
    prespike = None
    if first_spike is not None:
        window = t_ref[keep] < first_spike - PRESPIKE_MARGIN
        prespike = float(difference[window].max()) if window.any() else None
    return TraceComparison(
        float(difference.max()), float(np.sqrt(np.mean(difference**2))), prespike, int(difference.size)
    )


@dataclass(frozen=True)
class QuantityResult:
    """The verdict on one recorded quantity.

    ``passed`` is None for quantities that are compared but not judged (not a
    membrane potential).  ``note`` says where the tolerance came from;
    ``spike_times`` are the run's own crossings (s).
    """

    quantity: str
    passed: bool | None
    reason: str
    spikes: SpikeComparison | None = None
    trace: TraceComparison | None = None
    threshold: float | None = None
    note: str = ""
    spike_times: tuple[float, ...] = ()


def _first(*trains: np.ndarray) -> float:
    firsts = [float(s[0]) for s in trains if len(s)]
    return min(firsts) if firsts else float("inf")


def _judge_quantity(t, y, reference: Reference, quantity: str, criterion: Criterion) -> QuantityResult:
    ref_y = reference.traces[quantity]
    if not is_voltage(quantity):
        trace = compare_traces(t, y, reference.t, ref_y)
        return QuantityResult(quantity, None, "compared, not judged (not a membrane potential)", trace=trace)
    threshold = reference.threshold(quantity)
    ours = threshold_crossings(t, y, FALLBACK_THRESHOLD if threshold is None else threshold)
    ref = reference.spikes.get(quantity, np.empty(0))
    if criterion == "euler":
        tolerance, note = euler_tolerance(ref), "max(0.2 ms, 1% of the local jLEMS interspike interval)"
        if not ref.size:
            tolerance = np.float64(EULER_MIN_TOLERANCE)
    else:
        tolerance, note = neuron_tolerance(reference, quantity)
    spikes = compare_spikes(ours, ref, tolerance)
    trace = compare_traces(t, y, reference.t, ref_y, first_spike=_first(ours, ref))
    return QuantityResult(quantity, spikes.passed, spikes.reason, spikes, trace, threshold, note, tuple(ours.tolist()))


def compare_run(result: Mapping[str, np.ndarray], reference: Reference, criterion: Criterion) -> list[QuantityResult]:
    """Judge a run against its reference, one `QuantityResult` per quantity of the reference.

    Parameters
    ----------
    result : mapping
        ``{"t": times (s), <quantity path>: values (SI), ...}``, as
        `nml2lut.run_lems` returns, sampled at every step.
    reference : Reference
    criterion : {"euler", "default"}
        See the module docstring.

    Returns
    -------
    list of QuantityResult
        A quantity missing from ``result`` fails with that reason.
    """
    if criterion not in ("euler", "default"):
        raise ValueError(f"criterion must be 'euler' or 'default', got {criterion!r}")
    if "t" not in result:
        raise ValueError(f"the run's result has no 't' entry; it has {sorted(result)}")
    t = np.asarray(result["t"], dtype=float)
    verdicts = []
    for quantity in reference.quantities:
        if quantity not in result:
            verdicts.append(QuantityResult(quantity, False, f"quantity missing from the run (it has {sorted(result)})"))
            continue
        y = np.asarray(result[quantity], dtype=float)
        if y.shape != t.shape:
            verdicts.append(QuantityResult(quantity, False, f"{y.shape[0]} values for {t.shape[0]} times"))
            continue
        if not np.all(np.isfinite(y)):
            bad = float(t[np.flatnonzero(~np.isfinite(y))[0]])
            verdicts.append(QuantityResult(quantity, False, f"not finite from t={bad * 1e3:.3f} ms"))
            continue
        verdicts.append(_judge_quantity(t, y, reference, quantity, criterion))
    return verdicts


def compare_neuron(reference: Reference) -> dict[str, SpikeComparison]:
    """NEURON's spikes against jLEMS's for every voltage quantity, as the references' meta reports them.

    The tolerance is 0: only the counts, pairing and ``max_dt`` matter.
    """
    return {
        q: compare_spikes(reference.neuron_spikes[q], reference.spikes.get(q, np.empty(0)), 0.0)
        for q in reference.quantities
        if is_voltage(q) and q in reference.neuron_spikes
    }
