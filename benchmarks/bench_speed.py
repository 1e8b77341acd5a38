"""bench_speed: nml2lut against exact Brian2, lut4brian and a plain C kernel, side by side.

For each model (see `models`), target and variant, a fresh process builds
the model from the NeuroML files through nml2lut and runs it:

* numpy, cython: a 0.1 ms warm-up run (code generation, compilation), then
  the timed run of the rest;
* cpp_standalone: the project is built once (not timed) and ``device.run``
  is timed; further repeats run the same binary again.

Repeats alternate between variants (load on a shared machine drifts), and
medians are reported.  Extra rows: lut4brian's own network (model a,
cpp_standalone, when lut4brian is installed) and the plain C kernel of
`c_reference` (model b).  Spike times are compared with the exact variant
on the same target and dt.  Results go to ``benchmarks/results.md`` and
``results.json`` (one section per model; other sections are kept).

    python benchmarks/bench_speed.py --quick                 # smoke test, tiny sizes, writes nothing
    python benchmarks/bench_speed.py --model b --targets cpp_standalone cython
    python benchmarks/bench_speed.py --model a --targets cpp_standalone --variants exact lut lut4brian
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import models  # noqa: E402
import report  # noqa: E402
import spikes  # noqa: E402

TARGETS = ("numpy", "cython", "cpp_standalone")
EXTRA = {  # variants that are not nml2lut's: model -> name -> (targets, label)
    "a": {"lut4brian": (("cpp_standalone",), "lut4brian 0.1 (its own tables and equations), forward Euler")},
    "b": {"c_reference": (("cpp_standalone",), "plain C kernel, tabulated exp-Euler factors (c_reference)")},
}
QUICK = {"a": {"neurons": 50, "duration": 0.05}, "b": {"neurons": 100, "duration": 0.05}}
NUMPY_DEFAULT = {"a": {"neurons": 100, "duration": 0.2}, "b": {"neurons": 500, "duration": 0.2}}
WARMUP = 0.1e-3  # s
TITLES = {
    "a": "Model (a): lut4brian's Wang-Buzsaki network",
    "b": "Model (b): gating-dominated cells (8 channels, 13 gates)",
}
DESCRIPTIONS = {
    "a": "1000 Wang-Buzsaki cells (wb_na, wb_k, leak), 10% random excitatory synapses with 3-5 ms delays, no "
    "external drive, dt 0.01 ms, lut4brian's parameters and initial state; same network (seeded) for every row.",
    "b": "Uncoupled single-compartment cells with wb_na, wb_k, custom_kdr, q10_ka, q10_ka2, inst_nap, frac_ih and a "
    "leak at 36 degC (13 gates, 11 with dynamics), constant drive 1-5 uA/cm^2 over the population, all firing, "
    "dt 0.025 ms.",
}


# ---------------------------------------------------------------------------
# worker: one (model, target, variant) in a fresh process
# ---------------------------------------------------------------------------


def _simulate(model: str, target: str, variant: str, neurons: int, duration: float, workdir: Path) -> dict:
    os.chdir(workdir)  # lut4brian writes (and Brian2 may write) into the working directory
    if variant == "c_reference":
        from c_reference import kernel

        result = kernel.run(neurons, duration, repeats=1, workdir=workdir)
        return {"seconds": result["seconds"][0], "i": result["i"], "t": result["t"],
                "info": {k: v for k, v in result.items() if k not in ("seconds", "i", "t")}}  # fmt: skip
    import brian2 as b2

    b2.prefs.logging.file_log = False
    project = workdir / "project"
    if target == "cpp_standalone":
        b2.set_device("cpp_standalone", directory=str(project), build_on_run=False)
    else:
        b2.prefs.codegen.target = target
    if variant == "lut4brian":
        import lut4brian_network

        objects, monitor = lut4brian_network.build(neurons)
    else:
        objects, monitor, _ = models.BUILDERS[model](neurons, models.VARIANTS[variant])
    net = b2.Network(objects)
    if target == "cpp_standalone":
        net.run(duration * b2.second)
        start = time.perf_counter()
        b2.device.build(directory=str(project), compile=True, run=False)
        built = time.perf_counter() - start
        start = time.perf_counter()
        b2.device.run(directory=str(project))
        seconds = time.perf_counter() - start
        info = {"build_seconds": built, "project": str(project)}
    else:
        start = time.perf_counter()
        net.run(WARMUP * b2.second)
        info = {"warmup_seconds": time.perf_counter() - start}
        start = time.perf_counter()
        net.run((duration - WARMUP) * b2.second)
        seconds = (time.perf_counter() - start) * duration / (duration - WARMUP)  # per full duration
    return {"seconds": seconds, "i": monitor.i[:].tolist(), "t": (monitor.t[:] / b2.second).tolist(), "info": info}


def worker(argv: list[str]) -> int:
    model, target, variant, neurons, duration, workdir, out = argv
    try:
        result = _simulate(model, target, variant, int(neurons), float(duration), Path(workdir))
        result["available"] = True
    except models.VariantUnavailable as err:
        result = {"available": False, "reason": str(err)}
    Path(out).write_text(json.dumps(result))
    return 0


# ---------------------------------------------------------------------------
# parent
# ---------------------------------------------------------------------------


def _run_worker(model, target, variant, neurons, duration, scratch: Path) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"{model}-{target}-{variant}-", dir=scratch))
    out = workdir / "result.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", model, target, variant, str(neurons),
               str(duration), str(workdir), str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=workdir)
    if done.returncode or not out.exists():
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        return {"available": False, "reason": f"worker failed (exit {done.returncode})", "error": tail}
    return json.loads(out.read_text())


def _rerun_binary(project: str) -> float:
    """Run a built cpp_standalone project again, as ``device.run`` does; return the wall time."""
    start = time.perf_counter()
    subprocess.run(["./main", "--results_dir", str(Path(project) / "results")], cwd=project, check=True,
                   capture_output=True)  # fmt: skip
    return time.perf_counter() - start


def _variants_for(model: str, target: str, names: list[str]) -> list[str]:
    chosen = []
    for name in names:
        if name in models.VARIANTS:
            chosen.append(name)
        elif name in EXTRA.get(model, {}) and target in EXTRA[model][name][0]:
            chosen.append(name)
    return chosen


def _lut4brian_check(model: str, names: list[str]) -> str | None:
    if model != "a" or "lut4brian" not in names:
        return None
    import lut4brian_network

    ok, reason = lut4brian_network.available()
    return None if ok else reason


def bench_target(model, target, variants, neurons, duration, repeats, scratch, log) -> dict[str, dict]:
    """All repeats of all variants on one target; results per variant."""
    results: dict[str, dict] = {}
    for rep in range(repeats):
        for variant in variants:
            entry = results.get(variant)
            if entry is not None and not entry["available"]:
                continue
            if entry is None:
                result = _run_worker(model, target, variant, neurons, duration, scratch)
                result["seconds_all"] = [result.pop("seconds")] if result.get("available") else []
                results[variant] = result
            elif target == "cpp_standalone" and "project" in entry.get("info", {}):
                entry["seconds_all"].append(_rerun_binary(entry["info"]["project"]))
            else:
                again = _run_worker(model, target, variant, neurons, duration, scratch)
                entry["seconds_all"].append(again["seconds"])
            r = results[variant]
            state = f"{r['seconds_all'][-1]:.3f} s" if r["available"] else f"not available: {r['reason']}"
            log(f"  [{model} {target} {variant} run {rep + 1}/{repeats}] {state}")
    return results


def _row(model, target, variant, r, ref, neurons, duration) -> dict:
    label = models.VARIANTS[variant].label if variant in models.VARIANTS else EXTRA[model][variant][1]
    row = {"target": target, "variant": variant, "label": label, "available": r["available"]}
    if not r["available"]:
        row["reason"] = r["reason"] + (f": {r['error'].splitlines()[-1]}" if r.get("error") else "")
        return row
    row.update(neurons=neurons, duration_ms=duration * 1e3, seconds=[round(s, 4) for s in r["seconds_all"]],
               median=statistics.median(r["seconds_all"]), spikes=len(r["i"]),
               info={k: v for k, v in r.get("info", {}).items() if k != "project"})  # fmt: skip
    if ref is not None and ref.get("available"):
        row["speedup"] = statistics.median(ref["seconds_all"]) / row["median"]
        row["spikes_vs_exact"] = spikes.compare(ref, r, neurons)
        if model == "a":
            row["raster"] = spikes.raster(ref, r, neurons, duration)
    return row


def _size(model: str, target: str, args) -> tuple[int, float, str | None]:
    full = {"neurons": models.SIZES[model]["neurons"], "duration": models.SIZES[model]["duration"]}
    size = dict(QUICK[model] if args.quick else full)
    if args.neurons:
        size["neurons"] = args.neurons
    if args.duration:
        size["duration"] = args.duration * 1e-3
    neurons, duration, note = size["neurons"], size["duration"], None
    if target == "numpy" and not args.quick:
        neurons = args.numpy_neurons or min(neurons, NUMPY_DEFAULT[model]["neurons"])
        shorter = min(duration, NUMPY_DEFAULT[model]["duration"])
        duration = args.numpy_duration * 1e-3 if args.numpy_duration else shorter
    if (neurons, duration) != (full["neurons"], full["duration"]) and not args.quick:
        note = (
            f"{target}: {neurons} cells, {duration * 1e3:g} ms instead of {full['neurons']} cells, "
            f"{full['duration'] * 1e3:g} ms (time budget); speed-ups are against exact at the same size"
        )
    return neurons, duration, note


def bench_target_rows(model: str, target: str, args, log) -> dict:
    """The rows of one target of one model (variants, lut4brian or the C reference)."""
    names = args.variants or [*models.VARIANTS, *EXTRA.get(model, {})]
    notes = []
    missing = _lut4brian_check(model, names)
    if missing:
        names = [n for n in names if n != "lut4brian"]
        if target in EXTRA["a"]["lut4brian"][0]:
            notes.append(missing)
    neurons, duration, note = _size(model, target, args)
    if note:
        notes.append(note)
    variants = _variants_for(model, target, names)
    if models.REFERENCE not in variants:
        variants.insert(0, models.REFERENCE)
    log(f"model {model}, {target}: {neurons} cells, {duration * 1e3:g} ms, variants {', '.join(variants)}")
    with tempfile.TemporaryDirectory(prefix="nml2lut-bench-") as scratch:
        results = bench_target(model, target, variants, neurons, duration, args.repeats, Path(scratch), log)
    ref = results.get(models.REFERENCE)
    rows = [_row(model, target, variant, r, ref, neurons, duration) for variant, r in results.items()]
    c_ref = next((r for r in rows if r["variant"] == "c_reference" and r["available"]), None)
    if c_ref is not None:
        for row in rows:
            if row["available"]:
                row["vs_c_reference"] = row["median"] / c_ref["median"]
    if args.repeats < 3:
        notes.append(f"{args.repeats} run(s) per row (--repeats {args.repeats})")
    return {"rows": rows, "notes": notes, "neurons": neurons, "duration_ms": duration * 1e3}


def print_table(model: str, target: str, section: dict) -> None:
    print(f"\n{TITLES[model]}: {target}")
    print(f"{'target':15s} {'variant':12s} {'cells':>6s} {'ms':>6s} {'time (s)':>9s} {'vs exact':>9s} {'vs C':>6s} "
          f"{'spikes':>8s} {'count!=':>7s} {'max|dt| ms':>10s}  raster")  # fmt: skip
    for r in section["rows"]:
        if not r["available"]:
            print(f"{r['target']:15s} {r['variant']:12s} not available: {r['reason']}")
            continue
        s = r.get("spikes_vs_exact", {})
        x = r.get("raster")
        raster = ""
        if x:
            first = "never" if x["first_divergence_ms"] is None else f"{x['first_divergence_ms']:.1f} ms"
            raster = (f"diverges {first}, matched {x['matched_fraction']:.3f}, {x['rate_hz']:.1f} Hz, "
                      f"corr {x['population_rate_correlation']:.3f}")  # fmt: skip
        vs_c = f"{r['vs_c_reference']:.2f}" if r.get("vs_c_reference") is not None else "-"
        print(f"{r['target']:15s} {r['variant']:12s} {r['neurons']:6d} {r['duration_ms']:6g} {r['median']:9.3f} "
              f"{r.get('speedup', float('nan')):8.2f}x {vs_c:>6s} {r['spikes']:8d} "
              f"{s.get('count_mismatches', 0):7d} {s.get('max_dt_ms', float('nan')):10.4f}  {raster}")  # fmt: skip
    for note in section["notes"]:
        print(f"  note: {note}")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("a", "b", "all"), default="all")
    parser.add_argument("--neurons", type=int, help="cells (default: the model's)")
    parser.add_argument("--duration", type=float, help="simulated time in ms (default: the model's)")
    parser.add_argument("--numpy-neurons", type=int, help="cells on the numpy target (default: smaller)")
    parser.add_argument("--numpy-duration", type=float, help="ms on the numpy target (default: shorter)")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    parser.add_argument("--variants", nargs="+", help=f"default: all of {[*models.VARIANTS]} and the extra rows")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke test; writes no results")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--worker", nargs=7, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.worker:
        try:
            return worker(args.worker)
        except Exception:
            traceback.print_exc()
            return 1

    def log(message):
        print(message, file=sys.stderr, flush=True)

    machine = report.machine()
    for model in ("a", "b") if args.model == "all" else (args.model,):
        for target in args.targets:
            load_before = report.load_average()
            part = bench_target_rows(model, target, args, log)
            part.update(command=report.command(argv), machine=machine, load_before=load_before,
                        load_after=report.load_average())  # fmt: skip
            print_table(model, target, part)
            if not (args.quick or args.no_write):
                header = {"title": TITLES[model], "description": DESCRIPTIONS[model]}
                report.update_target(f"model_{model}", header, target, part)
    return 0


if __name__ == "__main__":
    sys.exit(main())
