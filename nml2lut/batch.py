"""batch: whole NeuroML libraries -> converted channels in a tree that mirrors the input, with a report.

`nml2lut.sources.discover` finds the files, `convert` runs one task per file in isolated
worker processes (`nml2lut.workers`) and writes, from this process only,
``OUT/channels/<input path>/<channel>.{npz,json}`` (`nml2lut.store`) and
``OUT/report.{json,md}`` (`nml2lut.report`).  A file's record
(``.source.json`` beside its channels) holds the content hash of the file
and everything it includes, so a rerun skips what is up to date and an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._version import __version__
from .errors import IncludeError, ParseError
from .report import RETRIED, convert_markdown, describe_error, error, summarise, write_report
from .sources import (
    BatchError,
    Discovery,
    Entry,
    Options,
    channel_stems,
    content_hash,
    discover,
    display_path,
    relative_paths,
)
from .store import StoreError, atomic_write, dump_channel, dumps, read_metadata, sha256_hex
from .workers import DEFAULT_MEMORY, DEFAULT_TIMEOUT, Deadline, run_tasks

__all__ = ["convert", "ConvertTask", "FileOutcome", "RECORD", "BatchError", "Options"]

RECORD = ".source.json"
"""A converted file's record, beside its channels (a channel's stem never starts with a dot)."""

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- the task of one file
@dataclass
class FileOutcome:
    """What a worker reports for one file; ``artefacts`` maps a channel's stem to its (npz, json) bytes."""

    rel: str
    status: str
    error: dict | None = None
    hash: str | None = None
    dependencies: list[str] = field(default_factory=list)
    channels: list[dict] = field(default_factory=list)
    note: str = ""
    seconds: float = 0.0
    artefacts: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)
    warnings: list[dict] = field(default_factory=list)


def _warning_records(caught) -> list[dict]:
    """Warnings as report entries, each distinct one once, in order."""
    records = [{"type": w.category.__name__, "message": str(w.message)} for w in caught]
    return [dict(t) for t in dict.fromkeys(tuple(r.items()) for r in records)]


@dataclass(frozen=True)
class ConvertTask:
    """Convert the channels a file defines (not those of its includes)."""

    path: str
    rel: str
    options: Options
    known: dict = field(default_factory=dict)  # channel id -> [hash, stem] of intact outputs

    def failure(self, error: dict) -> FileOutcome:
        return FileOutcome(self.rel, "failed", error)

    def run(self) -> FileOutcome:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outcome = self._run()
        # Warnings of the file itself (its channels keep their own): reported, never printed by a worker.
        outcome.warnings = _warning_records(caught)
        return outcome

    def _run(self) -> FileOutcome:
        from .parse import read_library

        start = time.perf_counter()
        path = Path(self.path)
        try:
            library = read_library(path)
            files = [Path(xml.path) for xml in library.files]
            digest = content_hash(path, files, self.options)
        except Exception as err:
            outcome = self._failed_file(path, err)
            outcome.seconds = time.perf_counter() - start
            return outcome
        base = path.resolve().parent
        own = [s for s in library.sources if Path(s.path) == path.resolve()]
        outcome = FileOutcome(self.rel, "converted", hash=digest, dependencies=relative_paths(files, base))
        pairs = list(zip(own, channel_stems([s.id for s in own]), strict=True))
        for k, (source, stem) in enumerate(pairs):
            try:
                outcome.channels.append(self._channel(library, source, stem, digest, outcome.artefacts))
            except Deadline:  # keep what is done; the rest is tried again by the next run
                late = error("TimeoutError", "the file's time limit ran out before this channel was done", "timeout")
                outcome.channels += [{"id": s.id, "line": s.line, "stem": st, "status": "failed", "error": late,
                                      "seconds": 0.0} for s, st in pairs[k:]]  # fmt: skip
                break
        if not own:
            elsewhere = len(library.sources)
            outcome.note = "defines no channels" + (
                f" ({elsewhere} in included files, converted there)" if elsewhere else ""
            )
        if any(c["status"] == "failed" for c in outcome.channels):
            outcome.status = "failed"
        outcome.seconds = time.perf_counter() - start
        return outcome

    def _failed_file(self, path: Path, err: Exception) -> FileOutcome:
        """A file that cannot be read; with its content hash when the failure depends only on known files."""
        from .parse.xmlread import MAX_BYTES, read_with_includes

        outcome = self.failure(describe_error(err))
        files = None
        try:
            if path.stat().st_size <= MAX_BYTES and outcome.error["category"] not in RETRIED:
                files = [Path(xml.path) for xml in read_with_includes(path)]
        except ParseError as xml_err:  # the XML itself: cached only if it is this file's own
            if not isinstance(xml_err, IncludeError) and xml_err.path and Path(xml_err.path) == path.resolve():
                files = [path.resolve()]
        except Exception:
            files = None
        if files is not None:
            try:
                outcome.hash = content_hash(path, files, self.options)
                outcome.dependencies = relative_paths(files, path.resolve().parent)
            except OSError:
                outcome.hash = None
        return outcome

    def _channel(self, library, source, stem: str, digest: str, artefacts: dict) -> dict:
        start = time.perf_counter()
        record = {"id": source.id, "line": source.line, "stem": stem, "status": "converted", "error": None}
        if self.known.get(source.id) == [digest, stem]:
            return {**record, "status": "up-to-date", "seconds": 0.0}
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                loaded = _load_source(library, source, self.options)
            notes = _warning_records(caught)
            metadata = {
                "source": {"path": self.rel, "channel": source.id, "line": source.line},
                "hash": digest,
                "options": self.options.as_json(),
                "warnings": notes,
            }
            artefacts[stem] = dump_channel(loaded, stem, metadata)
            grid = loaded.grid
            record.update(max_error=loaded.max_error, grid_points=None if grid is None else grid.n, warnings=notes)
        except Exception as err:
            record.update(status="failed", error=describe_error(err))
        record["seconds"] = time.perf_counter() - start
        return record


def _load_source(library, source, options: Options):
    """`nml2lut.load_channel` of one channel of an already parsed library.

    The file is parsed once for all its channels (``load_channel`` per
    channel would parse it once per channel: quadratic in a file with
    thousands of channels), and each channel still fails on its own.
    """
    from .channel import _load

    kwargs = {"n_points": None, **options.api()}
    return _load(library.build(source), name=None, mode="lut", **kwargs)


# ---------------------------------------------------------------- this process: outputs and records
def _mirror(out: Path, entry: Entry) -> Path:
    if entry.rel.startswith("/"):
        return out / "external" / entry.rel.lstrip("/")
    return out / "channels" / entry.rel


def _intact(folder: Path, stem: str) -> dict | None:
    """The metadata of the channel stored as ``stem`` if both its files are there and agree."""
    try:
        meta = read_metadata(folder / f"{stem}.json")
        data = (folder / meta["tables_file"]).read_bytes()
    except (StoreError, OSError):
        return None
    return meta if sha256_hex(data) == meta["tables_sha256"] else None


def _stored_channels(folder: Path) -> dict[str, list[str]]:
    """Channel id -> [hash, stem] of every intact channel in ``folder``."""
    known = {}
    for json_path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        if json_path.name.startswith("."):
            continue
        meta = _intact(folder, json_path.stem)
        if meta is not None and isinstance(meta.get("id"), str) and isinstance(meta.get("hash"), str):
            known[meta["id"]] = [meta["hash"], json_path.stem]
    return known


def _read_record(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("format") == "nml2lut-source" else None


def _up_to_date(entry: Entry, folder: Path, options: Options) -> dict | None:
    """The file's report from its record, if its content hash and every output still match."""
    record = _read_record(folder / RECORD)
    if not record or record.get("nml2lut_version") != __version__ or record.get("options") != options.as_json():
        return None
    try:
        return record if _still_valid(record, entry, folder, options) else None
    except (OSError, AttributeError, KeyError, TypeError, ValueError):  # a damaged record: convert again
        return None


def _still_valid(record: dict, entry: Entry, folder: Path, options: Options) -> bool:
    base = entry.path.resolve().parent
    digest = content_hash(entry.path, [base / d for d in record["dependencies"]], options)
    if digest != record["hash"] or record["status"] not in ("converted", "failed"):
        return False
    if (record.get("error") or {}).get("category") in RETRIED:
        return False
    for channel in record["channels"]:
        if not isinstance(channel["id"], str) or not isinstance(channel["stem"], str):
            return False
        if channel["status"] == "failed":
            if channel["error"]["category"] in RETRIED:
                return False
        elif channel["status"] != "converted" or (_intact(folder, channel["stem"]) or {}).get("hash") != digest:
            return False
    return True


def _channel_report(channel: dict, out: Path, folder: Path) -> dict:
    report = {k: v for k, v in channel.items() if k != "stem"}
    stored = channel["status"] != "failed"
    report["output"] = (folder / f"{channel['stem']}.json").relative_to(out).as_posix() if stored else None
    report.setdefault("warnings", [])
    report.setdefault("max_error", None)
    report.setdefault("grid_points", None)
    return report


def _file_report(entry: Entry, data: dict, out: Path, folder: Path, up_to_date: bool) -> dict:
    """The report of one file, from its record (up to date) or from a worker's outcome."""
    channels = [dict(c) for c in data.get("channels", [])]
    if up_to_date:
        for c in channels:
            c.update(seconds=0.0, status="failed" if c["status"] == "failed" else "up-to-date")
    report = {
        "path": entry.rel,
        "status": data["status"],
        "error": data.get("error"),
        "channels": [_channel_report(c, out, folder) for c in channels],
        "note": data.get("note", ""),
        "warnings": data.get("warnings", []),
        "hash": data.get("hash"),
        "dependencies": data.get("dependencies", []),
        "up_to_date": up_to_date,
        "seconds": 0.0 if up_to_date else data.get("seconds", 0.0),
    }
    if entry.via:
        report["via"] = entry.via
    return report


def _outcome_data(outcome: FileOutcome) -> dict:
    return {
        k: getattr(outcome, k)
        for k in ("rel", "status", "error", "hash", "dependencies", "channels", "note", "warnings", "seconds")
    }


def _recorded(channel: dict) -> dict:
    """A channel as its file's record keeps it: no time, and "converted" whether converted now or before."""
    kept = {k: v for k, v in channel.items() if k != "seconds"}
    if kept["status"] == "up-to-date":
        kept["status"] = "converted"
    return kept


def _store(outcome: FileOutcome, folder: Path, options: Options) -> None:
    """Write a file's new channels, then its record; remove outputs of channels it no longer has."""
    for channel in outcome.channels:  # kept from an earlier run: its measurements are in its JSON
        if channel["status"] == "up-to-date":
            meta = read_metadata(folder / f"{channel['stem']}.json")
            grid = meta.get("grid") or {}
            channel.update(
                max_error=meta.get("max_error"), grid_points=grid.get("n"), warnings=meta.get("warnings", [])
            )
    for stem, (npz, text) in sorted(outcome.artefacts.items()):
        atomic_write(folder / f"{stem}.npz", npz)
        atomic_write(folder / f"{stem}.json", text)
    if outcome.hash is None:  # failed, and may not fail next time: no record, so it is tried again
        (folder / RECORD).unlink(missing_ok=True)
        return
    record = {
        "format": "nml2lut-source",
        "nml2lut_version": __version__,
        "options": options.as_json(),
        **_outcome_data(outcome),
        "channels": [_recorded(c) for c in outcome.channels],
    }
    del record["seconds"]  # records are deterministic: times belong to the run's report
    current = {c["stem"] for c in outcome.channels if c["status"] != "failed"}
    for json_path in folder.glob("*.json") if outcome.error is None else ():  # a file that fails keeps its old outputs
        if not json_path.name.startswith(".") and json_path.stem not in current and _intact(folder, json_path.stem):
            (folder / f"{json_path.stem}.npz").unlink(missing_ok=True)
            json_path.unlink(missing_ok=True)
    for leftover in folder.glob(".nml2lut-tmp-*"):
        leftover.unlink(missing_ok=True)
    atomic_write(folder / RECORD, (dumps(record) + "\n").encode("utf-8"))


# ---------------------------------------------------------------- the batch
class _Converter:
    def __init__(self, found: Discovery, out: Path, options: Options, force: bool, progress):
        self.found, self.out, self.options, self.force, self.progress = found, out, options, force, progress
        self.files: dict[str, dict] = {}
        self.entries: dict[str, Entry] = {}
        self.seen = {e.path.resolve() for e in found.entries}
        self.total = len(found.entries)

    def finish(self, entry: Entry, report: dict) -> None:
        self.files[entry.rel] = report
        log.info("[%d/%d] %s: %s%s", len(self.files), self.total, entry.rel, report["status"],
                 " (up to date)" if report.get("up_to_date") else "")  # fmt: skip
        if self.progress is not None:
            self.progress(len(self.files), self.total, entry.rel, report["status"])

    def plan(self, entry: Entry) -> list[ConvertTask]:
        """The task for ``entry``, or none when it is skipped or up to date (then its report is made now)."""
        self.entries[entry.rel] = entry
        if entry.skip:
            self.finish(entry, {"path": entry.rel, "status": "skipped", "reason": entry.skip, "error": None,
                                "channels": [], "up_to_date": False, "seconds": 0.0})  # fmt: skip
            return []
        folder = _mirror(self.out, entry)
        record = None if self.force else _up_to_date(entry, folder, self.options)
        if record is None:
            known = {} if self.force else _stored_channels(folder)
            return [ConvertTask(str(entry.path), entry.rel, self.options, known)]
        self.finish(entry, _file_report(entry, record, self.out, folder, True))
        return self.follow(entry, record.get("dependencies", []))

    def follow(self, entry: Entry, dependencies: list[str]) -> list[ConvertTask]:
        """Tasks for included files that the input did not list (their channels are converted from them)."""
        tasks = []
        base = entry.path.resolve().parent
        for dependency in dependencies:
            path = (base / dependency).resolve()
            if path not in self.seen:
                self.seen.add(path)
                self.total += 1
                tasks += self.plan(Entry(path, display_path(path, self.found.root), "", via=entry.rel))
        return tasks

    def done(self, task: ConvertTask, outcome: FileOutcome) -> list[ConvertTask]:
        entry = self.entries[task.rel]
        folder = _mirror(self.out, entry)
        try:
            _store(outcome, folder, self.options)
        except (OSError, StoreError) as err:
            outcome = FileOutcome(outcome.rel, "failed", describe_error(err), seconds=outcome.seconds)
        self.finish(entry, _file_report(entry, _outcome_data(outcome), self.out, folder, False))
        return self.follow(entry, outcome.dependencies)


def convert(
    paths: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    options: Options | None = None,
    jobs: int = 1,
    timeout: float | None = DEFAULT_TIMEOUT,
    memory: int | None = DEFAULT_MEMORY,
    scheduler=None,
    force: bool = False,
    progress: Callable[[int, int, str, str], None] | None = None,
) -> dict:
    """Convert every channel of every NeuroML file under ``paths`` into ``out``; return the report.

    Parameters
    ----------
    paths : sequence of path-like
        Files or directories (searched recursively, see `discover`).
    out : path-like
        Output directory: ``channels/<input path>/<channel>.{npz,json}``,
        ``report.json`` and ``report.md``.
    options : Options, optional
        Temperature, voltage range, tolerance... for every channel (default `Options()`).
    jobs : int
        Worker processes.
    timeout, memory : float, int or None
        Limits per file: seconds, and bytes of address space of its worker.
    scheduler : str or distributed.Client, optional
        Run on a dask.distributed cluster instead (``pip install nml2lut[dask]``).
    force : bool
        Convert again even what is up to date.
    progress : callable, optional
        Called as ``progress(done, total, path, status)`` after each file.

    Returns
    -------
    dict
        The report, as written to ``out/report.json``.

    Raises
    ------
    BatchError
        An input path does not exist, or ``out`` is not a directory.

    Examples
    --------
    >>> from nml2lut.batch import convert
    >>> report = convert(["example_channels"], "out", jobs=2)  # doctest: +SKIP
    >>> report["summary"]["channels"]["failed"]  # doctest: +SKIP
    0
    """
    start = time.perf_counter()
    options = Options() if options is None else options
    out = Path(os.path.abspath(out))
    if out.exists() and not out.is_dir():
        raise BatchError(f"output {out} exists and is not a directory")
    found = discover(paths, exclude=[out])
    converter = _Converter(found, out, options, force, progress)
    tasks = [task for entry in found.entries for task in converter.plan(entry)]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BatchError(f"cannot create the output directory {out}: {err.strerror}") from err
    if tasks:
        run_tasks(tasks, converter.done, jobs=jobs, timeout=timeout, memory=memory, scheduler=scheduler)
    files = [converter.files[rel] for rel in sorted(converter.files)]
    report = {
        "command": "convert",
        "nml2lut_version": __version__,
        "inputs": [os.path.abspath(p) for p in paths],
        "root": str(found.root),
        "output": str(out),
        "options": options.as_json(),
        "summary": summarise(files),
        "skipped_directories": found.skipped_directories,
        "files": files,
        "seconds": time.perf_counter() - start,
    }
    write_report(out, report, convert_markdown(report))
    return report
