"""Validate nml2lut.run_lems against the jLEMS (and NEURON) reference simulations of shared/refsims.

For every reference ``.npz`` (one per LEMS simulation of the corpus) the LEMS
file is found in the corpus and run through ``nml2lut.run_lems`` in each mode
(``lut``, ``exact``) and method (``euler``: jLEMS's forward Euler at the same
step; ``default``: run_lems's own choice), each run in a subprocess of its own
so a crash or a timeout costs one row.  Each run is judged with
``nml2lut.refcompare.compare_run`` (criteria in that module's docstring) and
the rows go to ``results.md`` and ``results.json`` beside this script (or
``--out``), rewritten after every run so an interrupted batch keeps its rows.

    python validation/refsims.py                         # everything, cython target
    python validation/refsims.py --only Ex1_HH --modes lut --methods euler --target numpy
    python validation/refsims.py --only Pospischil --merge --plot validation/plots

``--merge`` keeps the rows of an earlier results.json that this invocation
does not rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared"
MODES = ("lut", "exact")
METHODS = ("euler", "default", "expeuler")
"""``euler``: jLEMS's scheme, asked for; ``default``: run_lems's own choice (no method given; jLEMS's scheme
since it became the default, nml2lut.METHOD before: those earlier rows are relabelled ``expeuler``);
``expeuler``: ``method=nml2lut.METHOD``, nml2lut's exponential Euler without jLEMS's lags."""


# ---------------------------------------------------------------- one run, in its own process


def worker(lems: str, mode: str, method: str, target: str, out: str, runner: str = "nml2lut:run_lems") -> int:
    """Run one simulation; write the traces to ``out`` (.npz) and a status record to ``out``.json."""
    record: dict = {"status": "ok"}
    try:
        import importlib

        module, _, name = runner.partition(":")
        run_lems = getattr(importlib.import_module(module), name, None)
        if run_lems is None and runner == "nml2lut:run_lems":  # not exported (yet): its own module
            run_lems = importlib.import_module("nml2lut.lems").run_lems
        if run_lems is None:
            raise ImportError(f"{runner}: no such function")

        start, cpu = time.perf_counter(), time.process_time()
        result = run_lems(lems, mode=mode, target=target, method=_method_argument(method))
        record.update(wall_s=time.perf_counter() - start, cpu_s=time.process_time() - cpu)
        arrays = {key: np.asarray(value, dtype=float) for key, value in result.items()}
        np.savez(out, **arrays)
        record["keys"] = sorted(arrays)
    except BaseException as err:  # recorded, whatever it is: the parent makes it a failed row
        record = {"status": "error", "type": type(err).__name__, "message": _explain(err)}
        traceback.print_exc()
    Path(out + ".json").write_text(json.dumps(record, sort_keys=True), encoding="utf-8")
    return 0 if record["status"] == "ok" else 1


def _method_argument(method: str):
    """What the worker passes to run_lems for a row's method name."""
    if method == "default":
        return None
    if method == "expeuler":
        import nml2lut

        return nml2lut.METHOD
    return method


def _explain(err: BaseException) -> str:
    """The message, followed by the chain of causes (Brian2 wraps the original error in its own)."""
    parts, seen = [str(err)], {id(err)}
    cause = err.__cause__ or err.__context__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        parts.append(f"caused by {type(cause).__name__}: {cause}")
        cause = cause.__cause__ or cause.__context__
    return " | ".join(parts)


def run_subprocess(lems: Path, mode: str, method: str, args: argparse.Namespace, scratch: Path) -> dict:
    """One run in a child process (its own session, so a timeout ends it and everything it started)."""
    scratch = Path(tempfile.mkdtemp(prefix=f"{mode}-{method}-", dir=scratch))  # fresh: never a stale record
    out = str(scratch / "result.npz")
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        str(lems),
        mode,
        method,
        args.target,
        out,
        args.runner,
    ]
    timeout = args.timeout
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        return {"status": "timeout", "type": "Timeout", "message": f"no result after {timeout:g} s", "wall_s": timeout}
    elapsed = time.perf_counter() - start
    tail = output.decode(errors="replace")[-2000:]
    try:
        record = json.loads(Path(out + ".json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        record = {"status": "crash", "type": "Crash", "message": f"exit status {child.returncode}: {tail[-300:]}"}
    record.update(process_wall_s=elapsed, returncode=child.returncode, output_tail=tail)
    if record["status"] == "ok":
        with np.load(out) as data:
            record["result"] = {key: data[key] for key in data.files}
    shutil.rmtree(scratch, ignore_errors=True)
    return record


# ---------------------------------------------------------------- judging


def judge(reference, record: dict, method: str) -> dict:
    """The row of one run: run status, per-quantity verdicts, overall pass/fail and reason."""
    from nml2lut.refcompare import compare_run

    row = {key: record.get(key) for key in ("status", "type", "message", "wall_s", "cpu_s", "process_wall_s")}
    if record["status"] != "ok":
        row.update(passed=False, reason=f"{record['type']}: {record['message']}", quantities=[])
        return row
    try:
        verdicts = compare_run(record["result"], reference, "euler" if method == "euler" else "default")
    except ValueError as err:
        row.update(passed=False, reason=f"comparison impossible: {err}", quantities=[])
        return row
    row["quantities"] = [_verdict_record(v, reference) for v in verdicts]
    judged = [v for v in verdicts if v.passed is not None]
    failed = [v for v in judged if not v.passed]
    row["passed"] = bool(judged) and not failed
    row["reason"] = "; ".join(f"{v.quantity}: {v.reason}" for v in failed) or ("ok" if judged else "nothing judged")
    return row


def _verdict_record(v, reference) -> dict:
    from nml2lut.refcompare import compare_spikes

    out = {"quantity": v.quantity, "passed": v.passed, "reason": v.reason, "note": v.note, "threshold_V": v.threshold}
    if v.spikes is not None:
        s = v.spikes
        out.update(
            n_ours=s.n_ours,
            n_jlems=s.n_ref,
            pairing=s.pairing,
            max_dt_s=s.max_dt,
            tolerance_s=s.tolerance,
            spikes_ours_s=list(v.spike_times),
            spikes_jlems_s=reference.spikes.get(v.quantity, np.empty(0)).tolist(),
        )
        if v.quantity in reference.neuron_spikes:  # for diagnosis only: ours against NEURON
            n = compare_spikes(v.spike_times, reference.neuron_spikes[v.quantity], 0.0)
            out.update(n_neuron=n.n_ref, max_dt_vs_neuron_s=n.max_dt)
    if v.trace is not None:
        t = v.trace
        out.update(max_abs=t.max_abs, rms=t.rms, max_abs_prespike=t.max_abs_prespike)
    return out


# ---------------------------------------------------------------- provenance and reports


def provenance(argv: list[str]) -> dict:
    """Where the figures come from: command line, machine, versions, commit, load average."""
    from nml2lut import machine

    return {
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *argv]),
        "host": platform.node(),
        **machine.describe(),
        "load_average_start": machine.load_average(),
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "commit": machine.commit(REPO),
    }


def _load() -> list[float] | None:
    from nml2lut import machine

    return machine.load_average()


def _ms(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x * 1e3:.{digits}g}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(report: dict) -> str:
    """results.md: provenance, the table of voltage quantities, then the other quantities (compared, not judged)."""
    rows = report["rows"]
    passed = sum(1 for r in rows if r["passed"])
    lines = [
        "# run_lems against the reference simulations (shared/refsims)",
        "",
        "Written by `validation/refsims.py`; criteria in `nml2lut/refcompare.py`. euler: same spike count, every",
        "spike within max(0.2 ms, 1% of the local jLEMS interspike interval). default and expeuler: same spike count,",
        "every spike within max(0.5 ms, 2 x the jLEMS-NEURON max spike-time difference), 0.5 ms where NEURON is",
        "missing or invalid. Methods: euler asks for jLEMS's scheme; default gives no method (run_lems's default,",
        "jLEMS's scheme); expeuler is method=nml2lut.METHOD (exponential Euler without jLEMS's lags), which was",
        "run_lems's default for invocations 1 to 45: the rows they ran as default are listed as expeuler.",
        "",
        *_invocations(report["runs"]),
        *(f"* Note: {note}" for note in report.get("notes", [])),
        f"* Runs: {len(rows)}, passed {passed}, failed {len(rows) - passed}. Wall times include Brian2 code generation"
        " and compilation. The ours-NEURON column is for diagnosis only (NEURON's own spike times, where the"
        " reference has them; counts may differ). Column 'by' names the invocation above that produced the row.",
        "",
        "| simulation | quantity | mode | method | status | spikes ours/jLEMS | max Δt (ms) | tolerance (ms) |"
        " max abs dV before 1st spike (mV) | (ours-NEURON max Δt, ms) | wall (s) | by | result | reason |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        voltages = [q for q in r["quantities"] if q["passed"] is not None] or [None]
        for q in voltages:
            counts = "-" if q is None or "n_ours" not in q else f"{q['n_ours']}/{q['n_jlems']}"
            lines.append(
                f"| {r['simulation']} | {_cell(q['quantity']) if q else '-'} | {r['mode']} | {r['method']} |"
                f" {r['status']} | {counts} | {_ms(q and q.get('max_dt_s'))} | {_ms(q and q.get('tolerance_s'))} |"
                f" {_ms(q and q.get('max_abs_prespike'))} | {_ms(q and q.get('max_dt_vs_neuron_s'))} | {_secs(r)} |"
                f" {r.get('run', 0) + 1} |"
                f" {'pass' if (q['passed'] if q else r['passed']) else 'FAIL'} |"
                f" {_cell(q['reason'] if q else r['reason'])[:300]} |"
            )
    lines += [
        "",
        "## Other quantities (compared on the jLEMS time base, not judged)",
        "",
        "| simulation | quantity | mode | method | max abs d (SI) | rms (SI) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        for q in r["quantities"]:
            if q["passed"] is None:
                lines.append(
                    f"| {r['simulation']} | {_cell(q['quantity'])} | {r['mode']} | {r['method']} |"
                    f" {q['max_abs']:.3g} | {q['rms']:.3g} |"
                )
    return "\n".join(lines) + "\n"


def _invocations(runs: list[dict]) -> list[str]:
    lines = []
    for number, p in enumerate(runs, start=1):
        lines += [
            f"* Invocation {number}: `{p['command']}` (commit {p['commit']}, started {p['date_utc']} UTC)",
            f"  on {p['host']}, {p['processor']}, {p['cpu_count']} CPUs, {p['platform']}; Python {p['python']},"
            f" brian2 {p['brian2']}, numpy {p['numpy']}, Cython {p['Cython']}, nml2lut {p['nml2lut']};"
            f" load average (1, 5, 15 min) at start {p['load_average_start']}, at end {p.get('load_average_end')}",
        ]
    return lines


def _secs(row: dict) -> str:
    wall = row.get("process_wall_s") or row.get("wall_s")
    return "-" if wall is None else f"{wall:.0f}"


def write_reports(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps(report, indent=1, sort_keys=True, default=float) + "\n", encoding="utf-8"
    )
    (out / "results.md").write_text(markdown(report), encoding="utf-8")


# ---------------------------------------------------------------- plots


def plot(reference, runs: dict[str, dict], path: Path) -> None:
    """One PNG: every voltage trace of jLEMS, NEURON and each of our runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nml2lut.refcompare import is_voltage

    voltages = [q for q in reference.quantities if is_voltage(q)]
    if not voltages:
        return
    fig, axes = plt.subplots(len(voltages), 1, figsize=(11, 2.6 * len(voltages) + 0.6), sharex=True, squeeze=False)
    for ax, q in zip(axes[:, 0], voltages, strict=True):
        ax.plot(reference.t * 1e3, reference.traces[q] * 1e3, color="k", lw=1.6, label="jLEMS")
        if reference.neuron_t is not None and q in reference.neuron_traces:
            label = "NEURON" + ("" if reference.neuron_valid else " (invalid)")
            ax.plot(
                reference.neuron_t * 1e3, reference.neuron_traces[q] * 1e3, color="0.55", lw=1, ls="--", label=label
            )
        for name, result in runs.items():
            if q in result:
                stride = max(1, len(result["t"]) // 20000)
                ax.plot(result["t"][::stride] * 1e3, result[q][::stride] * 1e3, lw=0.8, label=f"nml2lut {name}")
        ax.set_ylabel(f"{q}\n(mV)", fontsize=8)
    axes[-1, 0].set_xlabel("t (ms)")
    axes[0, 0].legend(fontsize=7, loc="upper right", ncol=3)
    fig.suptitle(reference.file, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------- the batch


def references(refsims: Path, only: list[str] | None) -> list:
    from nml2lut.refcompare import load_reference

    refs = [load_reference(p) for p in sorted(refsims.glob("*.npz")) if not only or any(s in p.name for s in only)]
    # Cheapest first, so a batch cut short has the most rows.
    return sorted(refs, key=lambda r: (r.meta["length_s"] / r.meta["dt_s"], r.file))


def short_name(reference) -> str:
    parts = reference.file.split("/")
    return f"{parts[0].split('__', 1)[-1]}/{Path(parts[-1]).stem}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(*args.worker)
    if args.render:
        write_reports(_read(args.out / "results.json"), args.out)
        return 0
    from tqdm import tqdm

    info = provenance(sys.argv if argv is None else ["validation/refsims.py", *argv])
    print(
        f"refsims validation: {info['command']}\n  machine {info['host']}: {info['processor']}, "
        f"{info['cpu_count']} CPUs, {info['platform']}; load average {info['load_average_start']}; "
        f"commit {info['commit']}",
        flush=True,
    )
    refs = references(args.refsims, args.only)
    if not refs:
        print(f"no reference matches {args.only} in {args.refsims}", file=sys.stderr)
        return 2
    report = _earlier(args, refs)
    report["runs"].append(info)
    number = len(report["runs"]) - 1
    jobs = [(r, m, k) for r in refs for m in args.modes for k in args.methods]
    progress = tqdm(jobs, unit="run", dynamic_ncols=True)
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="nml2lut-refsims-") as scratch:
        for i, (ref, mode, method) in enumerate(progress):
            progress.set_description(f"{short_name(ref)[-32:]} {mode} {method}")
            lems = ref.lems_path(args.corpus)
            if lems.exists():
                record = run_subprocess(lems, mode, method, args, Path(scratch))
            else:
                record = {"status": "missing", "type": "FileNotFoundError", "message": f"{lems} not found"}
            row = {
                "simulation": short_name(ref),
                "file": ref.file,
                "mode": mode,
                "method": method,
                "target": args.target,
                "run": number,
                **judge(ref, record, method),
            }
            report["rows"].append(row)
            if record["status"] != "ok":
                row["output_tail"] = record.get("output_tail", "")[-1500:]
            progress.write(
                f"  {row['simulation']} {mode} {method}: {'pass' if row['passed'] else 'FAIL'} ({row['reason'][:160]})"
            )
            if args.plot and record["status"] == "ok":
                runs[f"{mode} {method}"] = record["result"]
            last = i + 1 == len(jobs) or jobs[i + 1][0] is not ref
            if last and args.plot:
                args.plot.mkdir(parents=True, exist_ok=True)
                plot(ref, runs, args.plot / f"{Path(ref.path.name).stem.removesuffix('.xml')}.png")
            if last:
                runs = {}
            info["load_average_end"] = _load()
            write_reports(report, args.out)
    rows = report["rows"]
    print(
        f"{sum(r['passed'] for r in rows)}/{len(rows)} runs pass; load average at end {_load()};"
        f" {args.out / 'results.md'}",
        flush=True,
    )
    return 0 if all(r["passed"] for r in rows) else 1


def _earlier(args, refs) -> dict:
    """With --merge, the earlier invocations and the rows this one does not rerun; else an empty report."""
    path = args.out / "results.json"
    if not args.merge or not path.exists():
        return {"runs": [], "rows": []}
    report = _read(path)
    rerun = {(r.file, m, k) for r in refs for m in args.modes for k in args.methods}
    report["rows"] = [r for r in report["rows"] if (r["file"], r["mode"], r["method"]) not in rerun]
    return report


def _read(path: Path) -> dict:
    """A results.json, the single-invocation form of earlier versions ("provenance") made a list ("runs")."""
    report = json.loads(path.read_text(encoding="utf-8"))
    if "runs" not in report:
        report["runs"] = [report.pop("provenance")]
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--refsims", type=Path, default=SHARED / "refsims", help="folder of reference .npz files")
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpus", help="folder of the LEMS corpus")
    parser.add_argument(
        "--only",
        action="append",
        metavar="SUBSTRING",
        help="only references whose file name contains SUBSTRING (repeatable)",
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--target", choices=("numpy", "cython", "cpp_standalone"), default="cython")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run (default 900)")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for results.md and results.json")
    parser.add_argument("--merge", action="store_true", help="keep earlier rows that this invocation does not rerun")
    parser.add_argument("--plot", type=Path, metavar="DIR", help="write one PNG per simulation into DIR")
    parser.add_argument("--render", action="store_true", help="only rewrite results.md from results.json")
    parser.add_argument(
        "--runner",
        default="nml2lut:run_lems",
        metavar="MODULE:FUNCTION",
        help="the function to validate (default nml2lut:run_lems; another one tests this harness)",
    )
    parser.add_argument(
        "--worker", nargs=6, metavar=("LEMS", "MODE", "METHOD", "TARGET", "OUT", "RUNNER"), help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
