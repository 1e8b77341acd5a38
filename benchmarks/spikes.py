"""spikes: how far a spike raster is from the reference (exact) one.

Two kinds of figures:

* `compare`: per neuron with equal spike counts, the largest |t - t_ref|;
  how many neurons differ in count, the largest difference over their
  common first spikes and the earliest extra spike (an extra spike just
  before the end of the run is a shifted spike crossing the boundary);
  total spikes.  For uncoupled cells
  (model b) this is the accuracy figure.
* `raster`: for a chaotic network (model a), where any perturbation grows
  until the rasters decorrelate, the time until the first spike that has no
  partner within ``tolerance`` in the other raster (how long the two stay the
  same), the share of reference spikes matched within ``tolerance`` over the
  whole run, and the difference and correlation of the population rates.
"""

from __future__ import annotations

import numpy as np

__all__ = ["trains", "compare", "raster"]


def trains(i: np.ndarray, t: np.ndarray, n: int) -> list[np.ndarray]:
    """Sorted spike times of each of ``n`` neurons."""
    i, t = np.asarray(i, dtype=np.int64), np.asarray(t, dtype=float)
    order = np.lexsort((t, i))
    i, t = i[order], t[order]
    bounds = np.searchsorted(i, np.arange(n + 1))
    return [t[bounds[k] : bounds[k + 1]] for k in range(n)]


def compare(ref: dict, other: dict, n: int) -> dict:
    """Spike-time differences of ``other`` against ``ref`` (dicts with arrays ``i`` and ``t`` in s)."""
    a, b = trains(ref["i"], ref["t"], n), trains(other["i"], other["t"], n)
    worst, mismatched, compared = 0.0, 0, 0
    prefix_worst, first_extra = 0.0, np.inf  # neurons whose counts differ: their common first spikes
    for x, y in zip(a, b, strict=True):
        if x.size != y.size:
            mismatched += 1
            k = min(x.size, y.size)
            if k:
                prefix_worst = max(prefix_worst, float(np.max(np.abs(x[:k] - y[:k]))))
            first_extra = min(first_extra, float((x if x.size > k else y)[k]))
        elif x.size:
            compared += 1
            worst = max(worst, float(np.max(np.abs(x - y))))
    return {
        "spikes": int(sum(y.size for y in b)),
        "spikes_ref": int(sum(x.size for x in a)),
        "count_mismatches": mismatched,
        "neurons_compared": compared,
        "max_dt_ms": worst * 1e3,
        "mismatched_common_max_dt_ms": prefix_worst * 1e3 if mismatched else None,
        "earliest_extra_spike_ms": first_extra * 1e3 if mismatched else None,
    }


def _first_unmatched(x: np.ndarray, y: np.ndarray, tolerance: float) -> float:
    """Earliest time at which the k-th spikes of two trains differ by more than ``tolerance`` (inf: never)."""
    k = min(x.size, y.size)
    bad = np.nonzero(np.abs(x[:k] - y[:k]) > tolerance)[0]
    first = np.inf
    if bad.size:
        first = min(x[bad[0]], y[bad[0]])
    if x.size != y.size:
        first = min(first, (x if x.size > k else y)[k])
    return float(first)


def _matched(x: np.ndarray, y: np.ndarray, tolerance: float) -> int:
    """Spikes of ``x`` with a spike of ``y`` within ``tolerance``."""
    if not x.size or not y.size:
        return 0
    j = np.clip(np.searchsorted(y, x), 1, y.size - 1) if y.size > 1 else np.zeros(x.size, dtype=int)
    nearest = np.minimum(np.abs(y[j] - x), np.abs(y[j - 1] - x)) if y.size > 1 else np.abs(y[0] - x)
    return int(np.count_nonzero(nearest <= tolerance))


def raster(ref: dict, other: dict, n: int, duration: float, tolerance: float = 1e-4, bin_width: float = 1e-3) -> dict:
    """Raster figures of ``other`` against ``ref`` (see the module docstring); times in ms."""
    a, b = trains(ref["i"], ref["t"], n), trains(other["i"], other["t"], n)
    first = min((_first_unmatched(x, y, tolerance) for x, y in zip(a, b, strict=True)), default=np.inf)
    matched = sum(_matched(x, y, tolerance) for x, y in zip(a, b, strict=True))
    total_ref = sum(x.size for x in a)
    edges = np.arange(0.0, duration + bin_width / 2, bin_width)
    rate_ref = np.histogram(np.asarray(ref["t"], dtype=float), edges)[0]
    rate = np.histogram(np.asarray(other["t"], dtype=float), edges)[0]
    with np.errstate(all="ignore"):
        correlation = float(np.corrcoef(rate_ref, rate)[0, 1]) if rate.std() and rate_ref.std() else float("nan")
    return {
        "first_divergence_ms": first * 1e3 if np.isfinite(first) else None,
        "matched_fraction": matched / total_ref if total_ref else 1.0,
        "rate_ref_hz": total_ref / n / duration,
        "rate_hz": sum(y.size for y in b) / n / duration,
        "population_rate_correlation": correlation,
    }
