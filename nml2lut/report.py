"""report: batch outcomes -> classified failures, ``report.json`` and ``report.md``.

Every failure becomes ``{"type": <exception class>, "category": ..., "message": ...}``
(plus ``path``/``line`` for parse errors, ``feature`` for unsupported
features).  The JSON has sorted keys and no timestamps; the only values that
differ between two runs over the same input are the ``seconds`` fields.
"""

from __future__ import annotations

import collections
import traceback
from pathlib import Path
from typing import Any

from .errors import (
    ChannelNotFoundError,
    ExpressionError,
    IncludeError,
    ModelError,
    Nml2LutError,
    ParseError,
    TableError,
    UnitError,
    UnsupportedError,
)
from .store import StoreError, atomic_write, dumps

__all__ = [
    "describe_error",
    "error",
    "CATEGORIES",
    "RETRIED",
    "summarise",
    "write_report",
    "convert_markdown",
    "check_markdown",
]

# Most specific first: IncludeError is a ParseError.
_CLASSES: list[tuple[type[BaseException], str]] = [
    (IncludeError, "include"),
    (ParseError, "parse"),
    (UnitError, "unit"),
    (ExpressionError, "expression"),
    (UnsupportedError, "unsupported"),
    (ChannelNotFoundError, "channel-not-found"),
    (TableError, "table"),
    (StoreError, "store"),
    (ModelError, "model"),
    (Nml2LutError, "nml2lut"),
    (TimeoutError, "timeout"),
    (MemoryError, "memory"),
    (RecursionError, "memory"),
    (OSError, "io"),
]
CATEGORIES = {
    "include": "an <include> names a missing file, a URL, or closes a cycle (IncludeError)",
    "parse": "not well-formed XML, refused XML (entities, too large, too deep), or not NeuroML/LEMS (ParseError)",
    "unit": "unknown, missing or wrong unit, or a non-finite value (UnitError)",
    "expression": "an expression that is not LEMS: syntax, unknown function or symbol (ExpressionError)",
    "unsupported": "valid NeuroML that nml2lut does not support yet; 'feature' names it (UnsupportedError)",
    "channel-not-found": "no such channel (ChannelNotFoundError)",
    "table": "a curve is NaN/infinite or a time constant is not positive (TableError)",
    "store": "a converted channel cannot be written or read back (StoreError)",
    "model": "parses but is not a valid channel: missing or duplicate parts, unknown elements (ModelError)",
    "nml2lut": "another nml2lut error (Nml2LutError)",
    "timeout": "the file took longer than --timeout; its worker was stopped (TimeoutError)",
    "memory": "the file needed more than --memory (MemoryError) or nested too deeply (RecursionError)",
    "io": "a file could not be read or written (OSError)",
    "crash": "the worker process died while converting the file (WorkerCrashError)",
    "internal": "an unexpected exception: a bug in nml2lut, please report it (the builtin exception's name)",
}
"""The ``category`` of a failure, and what it means."""
RETRIED = frozenset({"timeout", "memory", "crash", "internal"})
"""Categories that depend on the machine or on a bug, not on the input: tried again by the next run."""
_MAX_MESSAGE = 4000


def error(type_name: str, message: str, category: str, **extra: Any) -> dict:
    """A failure record."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown failure category {category!r}")
    text = message if len(message) <= _MAX_MESSAGE else message[:_MAX_MESSAGE] + " [...]"
    return {"type": type_name, "message": text, "category": category, **extra}


def describe_error(err: BaseException) -> dict:
    """The failure record of an exception: its class name, message and category.

    >>> describe_error(UnitError("unknown unit 'furlong'"))["category"]
    'unit'
    """
    category = next((c for cls, c in _CLASSES if isinstance(err, cls)), "internal")
    extra: dict[str, Any] = {}
    if isinstance(err, ParseError):
        extra.update(path=err.path, line=err.line)
    if isinstance(err, UnsupportedError):
        extra["feature"] = err.feature
    if category == "internal":
        frames = traceback.format_exception(type(err), err, err.__traceback__, limit=-4)
        extra["traceback"] = "".join(frames)[-_MAX_MESSAGE:]
    message = str(err) or type(err).__name__
    return error(type(err).__name__, message, category, **extra)


# ---------------------------------------------------------------- summaries
def summarise(files: list[dict], channel_statuses: tuple[str, ...] = ("converted", "up-to-date", "failed")) -> dict:
    """Counts of files and channels by status, and of failures by type, category and feature."""
    file_counts = collections.Counter(f["status"] for f in files)
    channels = [c for f in files for c in f.get("channels", [])]
    channel_counts = collections.Counter(c["status"] for c in channels)
    failures = [f["error"] for f in files if f.get("error")] + [c["error"] for c in channels if c.get("error")]
    skipped = collections.Counter(f.get("reason", "") for f in files if f["status"] == "skipped")
    file_statuses = (
        ("converted", "failed", "skipped") if "converted" in channel_statuses else ("checked", "failed", "skipped")
    )
    file_summary = {"total": len(files), **{k: file_counts.get(k, 0) for k in file_statuses}}
    if "up-to-date" in channel_statuses:
        file_summary["up-to-date"] = sum(1 for f in files if f.get("up_to_date"))
    return {
        "files": file_summary,
        "channels": {"total": len(channels), **{k: channel_counts.get(k, 0) for k in channel_statuses}},
        "failures_by_type": _counted(e["type"] for e in failures),
        "failures_by_category": _counted(e["category"] for e in failures),
        "unsupported_features": _counted(e["feature"] for e in failures if e.get("feature")),
        "skipped_reasons": dict(sorted(skipped.items())),
        "channel_warnings_by_type": _counted(w["type"] for c in channels for w in c.get("warnings") or ()),
    }


def _counted(items) -> dict[str, int]:
    return dict(sorted(collections.Counter(items).items()))


def write_report(directory: str | Path, report: dict, markdown: str, stem: str = "report") -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` into ``directory`` atomically."""
    directory = Path(directory)
    json_path, md_path = directory / f"{stem}.json", directory / f"{stem}.md"
    atomic_write(json_path, (dumps(report) + "\n").encode("utf-8"))
    atomic_write(md_path, markdown.encode("utf-8"))
    return json_path, md_path


# ---------------------------------------------------------------- markdown
def _cell(text: Any, limit: int = 160) -> str:
    text = "" if text is None else str(text)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text.replace("|", "\\|") or " "


def _number(value: Any, spec: str = ".2e") -> str:
    return "" if value is None else format(value, spec)


def _error_text(err: dict | None) -> str:
    if not err:
        return ""
    feature = f" [{err['feature']}]" if err.get("feature") else ""
    return f"{err['type']}{feature}: {err['message']}"


def _warning_text(warnings: list[dict] | None) -> str:
    if not warnings:
        return ""
    more = f" (and {len(warnings) - 1} more warnings)" if len(warnings) > 1 else ""
    return f"warning: {warnings[0]['type']}: {warnings[0]['message']}{more}"


def _counts_table(summary: dict) -> list[str]:
    lines = ["| | total | converted | up to date | failed | skipped |", "|---|---:|---:|---:|---:|---:|"]
    f, c = summary["files"], summary["channels"]
    lines.append(f"| files | {f['total']} | {f['converted']} | {f['up-to-date']} | {f['failed']} | {f['skipped']} |")
    lines.append(
        f"| channels | {c['total']} | {c.get('converted', 0)} | {c.get('up-to-date', 0)} | {c.get('failed', 0)} | |"
    )
    return lines


def _failure_lines(summary: dict) -> list[str]:
    lines = []
    if summary["failures_by_type"]:
        lines += [
            "",
            "Failures by type: " + ", ".join(f"{k} {v}" for k, v in summary["failures_by_type"].items()) + ".",
        ]
    if summary["unsupported_features"]:
        features = ", ".join(f"{k} {v}" for k, v in summary["unsupported_features"].items())
        lines += ["", f"Unsupported features: {features}."]
    if summary.get("channel_warnings_by_type"):
        counts = ", ".join(f"{k} {v}" for k, v in summary["channel_warnings_by_type"].items())
        grid = (
            " (GridWarning: the tolerance was not met)" if "GridWarning" in summary["channel_warnings_by_type"] else ""
        )
        lines += ["", f"Channels converted with warnings: {counts}{grid}."]
    return lines


def convert_markdown(report: dict) -> str:
    """The human summary of a ``convert`` report: counts, then one row per file and channel."""
    summary = report["summary"]
    options = ", ".join(f"{k} {v}" for k, v in sorted(report["options"].items()) if v is not None) or "defaults"
    lines = [
        "# nml2lut convert",
        "",
        f"nml2lut {report['nml2lut_version']}; input root `{report['root']}`; output `{report['output']}`.",
        f"Options: {options}. Total time {report['seconds']:.1f} s.",
        "",
        *_counts_table(summary),
        *_failure_lines(summary),
        "",
        "## Files and channels",
        "",
        "| file | channel | status | max error | grid points | time (s) | error or note |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    skipped = []
    for f in report["files"]:
        if f["status"] == "skipped":
            skipped.append(f"| {_cell(f['path'], 200)} | {_cell(f.get('reason'))} |")
            continue
        if f.get("error") or not f["channels"]:
            text = _error_text(f.get("error")) or f.get("note", "")
            lines.append(f"| {_cell(f['path'], 200)} | | {f['status']} | | | {f['seconds']:.2f} | {_cell(text, 300)} |")
        for c in f["channels"]:
            text = _error_text(c.get("error")) or _warning_text(c.get("warnings"))
            lines.append(
                f"| {_cell(f['path'], 200)} | {_cell(c['id'])} | {c['status']} "
                f"| {_number(c.get('max_error')) if c.get('grid_points') else ''} "
                f"| {c.get('grid_points') or ''} | {c['seconds']:.2f} | {_cell(text, 300)} |"
            )
    if skipped:
        lines += ["", "## Skipped files", "", "| file | reason |", "|---|---|", *skipped]
    if report.get("skipped_directories"):
        lines += ["", "## Directories not searched", "", "| directory | reason |", "|---|---|"]
        lines += [f"| {_cell(d['path'], 200)} | {_cell(d['reason'])} |" for d in report["skipped_directories"]]
    lines += ["", "Failure categories: " + "; ".join(f"`{k}`: {v}" for k, v in CATEGORIES.items()) + ".", ""]
    return "\n".join(lines)


def check_markdown(report: dict) -> str:
    """The human summary of a ``check`` report: worst error per curve and where it is."""
    lines = [
        "# nml2lut check",
        "",
        f"nml2lut {report['nml2lut_version']}; {report['points']} check points per curve. {report['jlems']['note']}",
        "",
        "| file | channel | status | curve | worst error | metric | at (mV) | tolerance | jLEMS | error |",
        "|---|---|---|---|---:|---|---:|---:|---|---|",
    ]
    for f in report["files"]:
        if f["status"] == "skipped":
            continue
        if f.get("error"):
            lines.append(f"| {_cell(f['path'], 200)} | | failed | | | | | | | {_cell(_error_text(f['error']), 300)} |")
        for c in f["channels"]:
            worst = c.get("worst") or {}
            jlems = c.get("jlems") or {}
            lines.append(
                f"| {_cell(f['path'], 200)} | {_cell(c['id'])} | {c['status']} | {_cell(worst.get('curve'))} "
                f"| {_number(worst.get('max_error'))} | {worst.get('metric', '')} "
                f"| {_number(worst.get('at_mV'), '.3f')} "
                f"| {_number(c.get('tolerance'), 'g')} | {_cell(jlems.get('status', ''))} "
                f"| {_cell(_error_text(c.get('error')), 300)} |"
            )
    return "\n".join(lines) + "\n"
