"""plots: a channel's curves, exact and from its tables: samples, worst errors, CSV and PNG.

"Exact" is the bound channel's own expression for a curve (and, for kinetic
schemes, the numerical steady state and one-step matrix the tables were
built from); "LUT" is the table lookup exactly as Brian2 computes it.  The
pictures are the ones channels are compared by: steady states (inf) on one
panel, time constants (tau, log scale) on the other, the LUT dashed over
the exact curve.  Matplotlib is used through its object API with the Agg
canvas, so nothing depends on or changes the global backend.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import expr
from .store import atomic_write

__all__ = ["Samples", "exact_curves", "sample_curves", "worst_errors", "write_csv", "plot_curves", "CHECK_POINTS"]

CHECK_POINTS = 100_003
"""Points of the independent grid `worst_errors` uses: cell centres of a prime count, never on a table node."""
_PLOT_POINTS = 1601


def exact_curves(loaded) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The exact function of every curve of voltage alone, keyed as the tables are.

    Curves that also depend on a concentration (2-D tables) are left out.
    """
    trees = {f"{gate.id}/{key}": tree for gate in loaded.model.gates for key, tree in gate.curves().items()}
    if not isinstance(loaded.model.conductance_scale, expr.Num):
        trees["scale"] = loaded.model.conductance_scale
    curves = {k: _tree_function(t) for k, t in trees.items() if expr.free_symbols(t) <= {"v"}}
    for gate in loaded.model.gates:
        if gate.kind == "kinetic":
            from .steady import occupancy_curves, transition_curves

            curves.update({f"{gate.id}/{k}": f for k, f in occupancy_curves(gate).items()})
            if getattr(loaded, "dt", None):
                curves.update({f"{gate.id}/{k}": f for k, f in transition_curves(gate, loaded.dt).items()})
    return curves


def _tree_function(tree: expr.Node) -> Callable[[np.ndarray], np.ndarray]:
    def curve(v: np.ndarray) -> np.ndarray:
        return np.broadcast_to(expr.evaluate(tree, {"v": v}), np.shape(v))

    return curve


@dataclass
class Samples:
    """Curves of one channel at voltages ``v`` (V): ``exact[key]`` and ``lut[key]`` for ``"m/inf"``, ``"m/tau"``..."""

    channel: str
    v: np.ndarray
    exact: dict[str, np.ndarray] = field(default_factory=dict)
    lut: dict[str, np.ndarray] = field(default_factory=dict)
    temperature: float | None = None
    max_error: float | None = None

    def gates(self, quantity: str) -> list[str]:
        """The gates (``"m"``, ``"q/fast"``) that have curve ``quantity`` (``"inf"`` or ``"tau"``)."""
        return [k.rpartition("/")[0] for k in self.exact if k.rpartition("/")[2] == quantity]


def sample_curves(loaded, v=None, *, quantities: tuple[str, ...] = ("inf", "tau")) -> Samples:
    """Exact and LUT values of the channel's ``quantities`` at ``v`` (default: the table range, 0.1 mV apart)."""
    if v is None:
        low, high = (loaded.grid.v_min, loaded.grid.v_max) if loaded.grid is not None else (-0.1, 0.06)
        v = np.linspace(low, high, max(2, round((high - low) / 1e-4) + 1))
    v = np.asarray(v, dtype=float)
    samples = Samples(loaded.id, v, temperature=loaded.model.temperature,
                      max_error=loaded.max_error if loaded.tables is not None else None)  # fmt: skip
    for key, curve in exact_curves(loaded).items():
        if key.rpartition("/")[2] not in quantities:
            continue
        with np.errstate(all="ignore"):
            samples.exact[key] = np.asarray(curve(v), dtype=float)
        in_table = loaded.tables is not None and key in loaded.tables.names
        samples.lut[key] = loaded.tables.interpolate(v, key) if in_table else samples.exact[key]
    return samples


def worst_errors(loaded, points: int = CHECK_POINTS) -> list[dict]:
    """The worst error of every table column against its exact curve, on an independent dense grid.

    The metric is the tables' own: relative for time constants, absolute
    (relative above 1) for everything else.  Points where the exact curve is
    not finite (a removable singularity) are left out and counted.

    Returns
    -------
    list of dict
        ``{"curve", "max_error", "at_mV", "metric", "measured", "excluded"}``
        per column (``measured``: the error found when the table was built),
        or ``{"curve", "unchecked": reason}`` for a column without an exact form.
    """
    other = getattr(loaded, "tables2d", None)
    unchecked = [
        {"curve": k, "unchecked": "depends on a concentration (2-D table)"} for k in getattr(other, "names", ())
    ]
    tables = loaded.tables
    if tables is None:
        return unchecked
    low, high = tables.grid.v_min, tables.grid.v_max
    v = low + (np.arange(points) + 0.5) * ((high - low) / points)
    exact = exact_curves(loaded)
    results = []
    for key in tables.names:
        if key not in exact:
            results.append({"curve": key, "unchecked": "no exact form to compare with"})
            continue
        with np.errstate(all="ignore"):
            reference = np.asarray(exact[key](v), dtype=float)
        table = tables.interpolate(v, key)
        metric = "relative" if key.rpartition("/")[2] == "tau" else "absolute"
        scale = np.abs(reference) if metric == "relative" else np.maximum(1.0, np.abs(reference))
        finite = np.isfinite(reference) & (scale > 0)
        with np.errstate(all="ignore"):
            error = np.where(finite, np.abs(table - reference) / np.where(finite, scale, 1.0), 0.0)
        worst = int(np.argmax(error))
        measured = tables.errors.get(key)
        results.append({
            "curve": key,
            "max_error": float(error[worst]),
            "at_mV": float(v[worst] * 1e3),
            "metric": metric,
            "measured": None if measured is None else float(measured.max_error),
            "excluded": int(np.count_nonzero(~finite)),
        })  # fmt: skip
    return results + unchecked


# ---------------------------------------------------------------- files
def _columns(samples: Samples) -> list[tuple[str, np.ndarray]]:
    columns = [("v_mV", samples.v * 1e3)]
    gates = list(dict.fromkeys(samples.gates("inf") + samples.gates("tau")))
    for gate in gates:
        label = gate.replace("/", ".")
        for quantity, scale, unit in (("inf", 1.0, ""), ("tau", 1e3, "_ms")):
            key = f"{gate}/{quantity}"
            if key in samples.exact:
                columns.append((f"{label}_{quantity}_exact{unit}", samples.exact[key] * scale))
                columns.append((f"{label}_{quantity}_lut{unit}", samples.lut[key] * scale))
    return columns


def write_csv(samples: Samples, path: str | os.PathLike) -> Path:
    """CSV of the samples: ``v_mV``, then per gate ``<gate>_inf_exact``, ``_inf_lut``, ``_tau_exact_ms``...

    Then ``_tau_lut_ms``; fractional subgates are written ``gate.sub``.
    """
    columns = _columns(samples)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([name for name, _ in columns])
    for row in zip(*(values for _, values in columns), strict=True):
        writer.writerow([repr(float(x)) for x in row])
    atomic_write(path, buffer.getvalue().encode("utf-8"))
    return Path(path)


def plot_curves(samples: Samples, path: str | os.PathLike, *, title: str | None = None) -> Path:
    """PNG of the samples: steady states (left) and time constants on a log scale (right), LUT dashed over exact."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.4), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    inf_axes, tau_axes = figure.subplots(1, 2)
    colours = {gate: f"C{k % 10}" for k, gate in enumerate(dict.fromkeys(samples.gates("inf") + samples.gates("tau")))}
    v = samples.v * 1e3
    for axes, quantity, scale in ((inf_axes, "inf", 1.0), (tau_axes, "tau", 1e3)):
        for gate in samples.gates(quantity):
            key = f"{gate}/{quantity}"
            axes.plot(v, samples.exact[key] * scale, color=colours[gate], lw=2.2, alpha=0.45, label=f"{gate} exact")
            axes.plot(v, samples.lut[key] * scale, color=colours[gate], lw=1.1, ls="--", label=f"{gate} LUT")
        axes.set_xlabel("membrane potential (mV)")
        axes.grid(alpha=0.3)
        if axes.lines:
            axes.legend(fontsize=8, ncols=2 if len(axes.lines) > 6 else 1)
        else:
            axes.text(0.5, 0.5, f"no {quantity} curves", ha="center", va="center", transform=axes.transAxes)
    inf_axes.set_ylabel("steady state (inf)")
    inf_axes.set_ylim(-0.05, 1.05)
    tau_axes.set_ylabel("time constant tau (ms)")
    if any(np.any(np.asarray(line.get_ydata()) > 0) for line in tau_axes.lines):
        tau_axes.set_yscale("log")
    temperature = "" if samples.temperature is None else f" at {samples.temperature - 273.15:.4g} degC"
    error = "" if samples.max_error is None else f"; worst measured table error {samples.max_error:.1e}"
    figure.suptitle(title or f"{samples.channel}{temperature}: exact (solid) and lookup table (dashed){error}")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write(path, buffer.getvalue())
    return Path(path)
