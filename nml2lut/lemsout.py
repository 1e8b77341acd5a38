"""lemsout: `run_lems` results written as jLEMS writes them (OutputFile and EventOutputFile).

File names come from the LEMS file, which is untrusted: a name must stay
inside the output directory (no absolute paths, no ``..``).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import numpy as np

from .errors import ModelError
from .parse.lems import SimulationSpec

__all__ = ["write_outputs", "plot_outputs"]


def _inside(directory: Path, name: str, where: str) -> Path:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not name or PurePosixPath(name).is_absolute() or ".." in parts or any(":" in p for p in parts):
        raise ModelError(f"{where}: output file name {name!r} must be a relative path inside the output directory")
    return directory.joinpath(*parts)


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", encoding="utf-8") as handle:
        write(handle)
    os.replace(partial, path)


def write_outputs(simulation: SimulationSpec, results: dict[str, np.ndarray], directory: str | os.PathLike) -> list[Path]:
    """Write each ``OutputFile`` (time, then one column per quantity, SI, tab-separated) and ``EventOutputFile``.

    Event files hold one line per spike: ``time<TAB>id`` (format ``TIME_ID``,
    jLEMS's default) or ``id<TAB>time`` (``ID_TIME``), ``id`` being the
    EventSelection's id.

    Returns
    -------
    list of Path
        The files written.
    """
    directory = Path(directory)
    written = []
    for output in simulation.outputs:
        if not output.file_name:  # recorded from Display lines: no file of its own
            continue
        path = _inside(directory, output.file_name, simulation.where)
        table = np.column_stack([results["t"], *(results[q] for _, q in output.columns)])
        _atomic_write(path, lambda handle, table=table: np.savetxt(handle, table, delimiter="\t", fmt="%.9g"))
        written.append(path)
    for events in simulation.event_outputs:
        path = _inside(directory, events.file_name, simulation.where)
        rows = []
        for ident, select in events.selections:
            rows += [(time, ident) for time in results[f"spikes:{select}"]]
        rows.sort(key=lambda row: row[0])
        time_first = events.format.upper() != "ID_TIME"

        def write(handle, rows=rows, time_first=time_first):
            for time, ident in rows:
                handle.write(f"{time:.9g}\t{ident}\n" if time_first else f"{ident}\t{time:.9g}\n")

        _atomic_write(path, write)
        written.append(path)
    return written


def plot_outputs(simulation: SimulationSpec, results: dict[str, np.ndarray], path: str | os.PathLike) -> Path:
    """One panel per recorded quantity kind (membrane potentials together), time in ms; PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quantities = [q for output in simulation.outputs for _, q in output.columns]
    groups: dict[str, list[str]] = {}
    for quantity in quantities:
        groups.setdefault(quantity.rpartition("/")[2], []).append(quantity)
    figure, axes = plt.subplots(len(groups), 1, sharex=True, figsize=(9, 2.4 * len(groups)), squeeze=False)
    t = results["t"] * 1e3
    for axis, (kind, members) in zip(axes[:, 0], groups.items()):
        scale, unit = (1e3, "mV") if kind == "v" else (1.0, "SI")
        for quantity in members:
            axis.plot(t, results[quantity] * scale, lw=0.8, label=quantity)
        axis.set_ylabel(f"{kind} ({unit})")
        if len(members) <= 8:
            axis.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("time (ms)")
    figure.suptitle(f"{simulation.id}: nml2lut run_lems")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path

