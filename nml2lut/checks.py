"""checks: table accuracy against the exact curves, file by file over a library (``nml2lut check``).

Each channel is loaded as ``convert`` would load it (or read back from a
converted ``.json``), and every table column is compared with its exact
curve on an independent dense grid (`nml2lut.plots.worst_errors`): the worst
error and where on the voltage axis.  With Java and pyNeuroML present the
curves are also compared with jLEMS (`nml2lut.jlems`).  Files run in the
isolated workers of `nml2lut.workers`, like ``convert``.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._version import __version__
from .report import check_markdown, describe_error, summarise, write_report
from .sources import Discovery, Entry, Options, discover
from .store import FORMAT, StoreError, read_metadata
from .workers import DEFAULT_MEMORY, DEFAULT_TIMEOUT, run_tasks

__all__ = ["check", "check_channel", "CheckTask"]


def check_channel(
    loaded, *, tolerance: float | None = None, points: int | None = None, source=None, jlems=False
) -> dict:
    """The accuracy record of one loaded channel: worst error per curve, and ``status`` ``ok`` or ``breach``.

    ``tolerance`` defaults to the one the tables were built for.  With
    ``jlems`` true and ``source`` the NeuroML file, jLEMS's curves are compared too.
    """
    from . import jlems as jlems_module
    from .plots import CHECK_POINTS, worst_errors

    record: dict = {"id": loaded.id, "status": "ok", "error": None, "jlems": None}
    curves = worst_errors(loaded, points or CHECK_POINTS)
    if loaded.tables is None:
        note = "no voltage tables" + (" (2-D tables not checked)" if curves else " (no voltage-dependent gates)")
        record.update(tolerance=tolerance, curves=curves, worst=None, note=note)
    else:
        limit = loaded.tables.tolerance if tolerance is None else tolerance
        checked = [c for c in curves if "max_error" in c]
        worst = max(checked, key=lambda c: c["max_error"], default=None)
        record.update(tolerance=limit, curves=curves, worst=worst)
        if worst is not None and not worst["max_error"] <= limit:
            record["status"] = "breach"
    if jlems and source is not None:
        record["jlems"] = jlems_module.compare(loaded, source)
        if record["jlems"]["status"] != "match":
            record["status"] = "breach"
    return record


@dataclass
class CheckOutcome:
    rel: str
    status: str
    error: dict | None = None
    channels: list[dict] = field(default_factory=list)
    note: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class CheckTask:
    """Check the channels a NeuroML file defines, or one converted channel (``artefact``)."""

    path: str
    rel: str
    options: Options
    artefact: bool = False
    tolerance: float | None = None
    points: int | None = None
    jlems: bool = False

    def failure(self, error: dict) -> CheckOutcome:
        return CheckOutcome(self.rel, "failed", error)

    def run(self) -> CheckOutcome:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # accuracy is measured here, not warned about
            return self._run()

    def _run(self) -> CheckOutcome:
        start = time.perf_counter()
        try:
            loaders = self._loaders()
        except Exception as err:
            outcome = self.failure(describe_error(err))
        else:
            outcome = CheckOutcome(self.rel, "checked", channels=[self._one(i, load) for i, load in loaders])
            if not loaders:
                outcome.note = "defines no channels"

        outcome.seconds = time.perf_counter() - start
        return outcome

    def _loaders(self) -> list[tuple[str, Callable]]:
        if self.artefact:
            from .store import load_tables

            return [(read_metadata(self.path)["id"], lambda: load_tables(self.path))]
        from .channel import load_channel
        from .parse import read_library

        here = Path(self.path).resolve()
        own = [s.id for s in read_library(self.path).sources if Path(s.path) == here]
        return [(i, lambda i=i: load_channel(self.path, i, **self.options.api())) for i in own]

    def _one(self, ident: str, load: Callable) -> dict:
        start = time.perf_counter()
        try:
            loaded = load()
            source = loaded.model.source if self.artefact else self.path
            record = check_channel(loaded, tolerance=self.tolerance, points=self.points,
                                   source=source if source and Path(source).is_file() else None,
                                   jlems=self.jlems)  # fmt: skip
        except Exception as err:
            record = {"id": ident, "status": "failed", "error": describe_error(err), "curves": [], "worst": None}
        record["seconds"] = time.perf_counter() - start
        return record


def _is_artefact(path: Path) -> bool:
    try:
        return read_metadata(path).get("format") == FORMAT
    except StoreError:
        return False


def _entries(found: Discovery) -> list[tuple[Entry, bool]]:
    """NeuroML files and converted channels (``.json``) to check; other files skipped with a reason."""
    out = []
    for entry in found.entries:
        if entry.path.suffix == ".json" and not entry.path.name.startswith("."):
            artefact = _is_artefact(entry.path)
            skip = "" if artefact else "JSON that is not a converted nml2lut channel"
            out.append((Entry(entry.path, entry.rel, skip), artefact))
        else:
            out.append((entry, False))
    return out


def check(
    paths: Sequence[str | os.PathLike],
    *,
    options: Options | None = None,
    tolerance: float | None = None,
    points: int | None = None,
    jlems: bool = True,
    jobs: int = 1,
    timeout: float | None = DEFAULT_TIMEOUT,
    memory: int | None = DEFAULT_MEMORY,
    scheduler=None,
    progress: Callable[[int, int, str, str], None] | None = None,
) -> dict:
    """Check the tables of every channel under ``paths`` (NeuroML files, or ``.json`` from ``convert``).

    Returns the report: per file and channel the worst error of each curve
    (``curves``), the worst of all (``worst``: curve, error, voltage), the
    tolerance, ``status`` ``ok``, ``breach`` or ``failed``, and the jLEMS
    comparison when it ran.  ``summary["channels"]`` counts the statuses.

    Examples
    --------
    >>> from nml2lut.checks import check
    >>> report = check(["example_channels"], jlems=False)  # doctest: +SKIP
    >>> report["summary"]["channels"]["breach"]  # doctest: +SKIP
    0
    """
    from . import jlems as jlems_module

    start = time.perf_counter()
    options = Options() if options is None else options
    found = discover(paths)
    can, note = jlems_module.availability()
    if not jlems:
        can, note = False, "jLEMS comparison not asked for"
    files: dict[str, dict] = {}
    tasks = []
    for entry, artefact in _entries(found):
        if entry.skip:
            files[entry.rel] = {
                "path": entry.rel,
                "status": "skipped",
                "reason": entry.skip,
                "error": None,
                "channels": [],
            }
        else:
            tasks.append(CheckTask(str(entry.path), entry.rel, options, artefact, tolerance, points, can))
    total = len(files) + len(tasks)

    def done(task: CheckTask, outcome: CheckOutcome) -> list:
        files[task.rel] = {"path": task.rel, "status": outcome.status, "error": outcome.error,
                           "channels": outcome.channels, "note": outcome.note, "seconds": outcome.seconds}  # fmt: skip
        if progress is not None:
            progress(len(files), total, task.rel, outcome.status)
        return []

    if tasks:
        run_tasks(tasks, done, jobs=jobs, timeout=timeout, memory=memory, scheduler=scheduler)
    ordered = [files[rel] for rel in sorted(files)]
    return {
        "command": "check",
        "nml2lut_version": __version__,
        "inputs": [os.path.abspath(p) for p in paths],
        "root": str(found.root),
        "options": options.as_json(),
        "tolerance": tolerance,
        "points": points or _default_points(),
        "jlems": {"ran": can, "note": note},
        "summary": summarise(ordered, ("ok", "breach", "failed")),
        "files": ordered,
        "seconds": time.perf_counter() - start,
    }


def _default_points() -> int:
    from .plots import CHECK_POINTS

    return CHECK_POINTS


def write_check_report(directory: str | os.PathLike, report: dict) -> tuple[Path, Path]:
    """``check-report.json`` and ``check-report.md`` in ``directory``."""
    return write_report(directory, report, check_markdown(report), stem="check-report")
