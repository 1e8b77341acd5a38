"""report: machine facts, and results.json -> results.md.

Each benchmark script stores its section (model a, model b, tables) in
``results.json`` with the command that produced it; ``results.md`` is
rendered from the whole file, so running one model keeps the others' figures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nml2lut import machine as machine_info

HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "results.md"


load_average = machine_info.load_average


def machine() -> dict:
    """Platform, processor, core count, tool versions (lut4brian's too) and the nml2lut commit."""
    info = machine_info.describe(("brian2", "numpy", "Cython", "nml2lut", "lut4brian"))
    info["nml2lut_commit"] = machine_info.commit(HERE.parent)
    return info


def command(argv: list[str]) -> str:
    """The command line as typed from the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        shown = script.relative_to(HERE.parent)
    except ValueError:
        shown = script
    return " ".join(["python", str(shown), *argv])


def update(key: str, section: dict, path_json: Path = RESULTS_JSON, path_md: Path = RESULTS_MD) -> None:
    """Store one section and render the markdown again."""
    data = json.loads(path_json.read_text()) if path_json.exists() else {}
    data[key] = section
    path_json.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    path_md.write_text(render(data))


def update_target(model_key: str, header: dict, target: str, part: dict) -> None:
    """Store the rows of one target of one model, keeping the other targets' rows."""
    data = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    section = data.get(model_key, {})
    section.update(header)
    section.setdefault("targets", {})[target] = part
    update(model_key, section)


def _fmt(x, spec: str = ".3g", none: str = "-") -> str:
    if x is None:
        return none
    if isinstance(x, float) and x != x:
        return "nan"
    return format(x, spec)


def _speed_table(section: dict) -> list[str]:
    has_c = any(r.get("vs_c_reference") is not None for r in section["rows"])
    has_raster = any("raster" in r for r in section["rows"])
    head = ["target", "variant", "cells", "simulated (ms)", "run time (s)", "speed-up vs exact"]
    head += ["time / C reference"] if has_c else []
    head += ["spikes", "max abs spike-time diff (ms), cells with equal counts", "cells with other count",
             "their common spikes: max diff (ms)", "earliest extra spike (ms)"]  # fmt: skip
    if has_raster:
        head += ["first divergence (ms)", "spikes matched within 0.1 ms", "rate (Hz)", "pop. rate corr."]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in section["rows"]:
        if not r.get("available", True):
            cells = [r["target"], r["variant"], "-", "-", f"not available: {r['reason']}"]
            cells += ["-"] * (len(head) - len(cells))
            lines.append("| " + " | ".join(cells) + " |")
            continue
        times = ", ".join(f"{s:.2f}" for s in r["seconds"])
        cells = [r["target"], r["variant"], str(r["neurons"]), f"{r['duration_ms']:g}",
                 f"{r['median']:.3f} ({times})", _fmt(r.get("speedup"), ".2f") + "x"]  # fmt: skip
        if has_c:
            cells.append(_fmt(r.get("vs_c_reference"), ".2f"))
        s = r.get("spikes_vs_exact") or {}
        cells += [
            str(r["spikes"]),
            _fmt(s.get("max_dt_ms"), ".4f"),
            _fmt(s.get("count_mismatches"), "d"),
            _fmt(s.get("mismatched_common_max_dt_ms"), ".3f"),
            _fmt(s.get("earliest_extra_spike_ms"), ".2f"),
        ]
        if has_raster:
            x = r.get("raster") or {}
            cells += [_fmt(x.get("first_divergence_ms"), ".1f", "never"), _fmt(x.get("matched_fraction"), ".3f"),
                      _fmt(x.get("rate_hz"), ".1f"), _fmt(x.get("population_rate_correlation"), ".3f")]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render(data: dict) -> str:
    out = ["# nml2lut benchmark results", "",
           "Written by `benchmarks/bench_speed.py` and `benchmarks/bench_tables.py`; each section names the command "
           "that produced it, the machine and its load average (1, 5, 15 min) before and after the run. Run times "
           "are medians of the listed runs (runs of different variants alternate); speed-ups are ratios of medians "
           "from the same run of the script. Spike times are compared with the exact model on the same target "
           "and dt.", ""]  # fmt: skip
    for key in sorted(k for k in data if k.startswith("model_")):
        section = data[key]
        out += [f"## {section['title']}", "", section["description"], ""]
        for target in ("cpp_standalone", "cython", "numpy"):
            part = section.get("targets", {}).get(target)
            if part is None:
                continue
            m = part["machine"]
            out += [f"### {target}", "", f"Command: `{part['command']}`", "",
                    f"Machine: {m['processor']}, {m['cpu_count']} CPUs (os.cpu_count), {m['platform']}, Python "
                    f"{m['python']}, brian2 {m['brian2']}, nml2lut {m.get('nml2lut')} "
                    f"(commit {m.get('nml2lut_commit', '?')}), gcc {m.get('gcc')}; load "
                    f"average {part['load_before']} before, {part['load_after']} after.", ""]  # fmt: skip
            out += _speed_table(part) + [""]
            out += [f"- {note}" for note in part.get("notes", [])]
            out += [""] if part.get("notes") else []
    if "tables" in data:
        t = data["tables"]
        out += ["## Building the tables of the corpus", "", f"Command: `{t['command']}`", ""]
        out += [f"Machine: {t['machine']['processor']}, {t['machine']['cpu_count']} CPUs; load average "
                f"{t['load_before']} before, {t['load_after']} after.", ""]  # fmt: skip
        if t.get("skipped"):
            out += [t["skipped"], ""]
        else:
            out += [f"{t['channels']} (file, channel) pairs, {t['built']} with tables, {t['no_tables']} without "
                    f"gates, {t['refused']} refused ({t['refused_by']}); wall time **{t['wall_seconds']:.1f} s** "
                    f"with {t['workers']} worker processes, start-up and imports included (sum of per-channel times "
                    f"{t['cpu_seconds']:.1f} s); listing the channels (parsing every file once, in the parent) took "
                    f"{t['list_seconds']:.1f} s more.", "",
                    "Slowest channels:", "", "| file | channel | s | grid points |", "|---|---|---|---|"]  # fmt: skip
            out += [f"| {s['file']} | {s['channel']} | {s['seconds']:.2f} | {s.get('points', '-')} |"
                    for s in t["slowest"]]  # fmt: skip
            out += [""]
    return "\n".join(out)
