"""cli: the ``nml2lut`` command; subcommands call the API and map outcomes to exit codes.

``demo``, ``convert``, ``check``, ``curves`` and ``simulate``.  Exit status: 0 success,
1 a failure or a check breach, 2 usage errors (bad arguments, missing
inputs), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys

import numpy as np

from ._version import __version__
from .errors import Nml2LutError

__all__ = ["main", "build_parser"]


def _demo(args: argparse.Namespace) -> int:
    from .demo import plot_demo, run_demo

    result = run_demo(target=args.target, duration=args.duration * 1e-3, n_neurons=args.neurons)
    lut, exact = result.spikes["lut"], result.spikes["exact"]
    print(f"HH cell, {args.neurons} neurons, {args.duration:g} ms, target {args.target}, exponential Euler")
    print(f"  spikes of neuron 0: lut {lut.size}, exact {exact.size}")
    diffs = result.spike_differences()
    if diffs.size:
        print(f"  spike-time difference lut vs exact: max {diffs.max() * 1e3:.4f} ms, "
              f"mean {diffs.mean() * 1e3:.4f} ms")  # fmt: skip
    else:
        print("  spike counts differ: no pairwise spike-time comparison")
    print(f"  max measured table error: {result.max_table_error:.2e}")
    for mode in ("exact", "lut"):
        print(f"  run time {mode:5s}: {result.run_seconds[mode]:.3f} s")
    speedup = result.run_seconds["exact"] / result.run_seconds["lut"]
    print(f"  speed-up: {speedup:.2f}x")
    print(f"  plot: {plot_demo(result, args.output)}")
    return 0 if lut.size == exact.size and lut.size > 0 and np.all(diffs < 2e-4) else 1


# ---------------------------------------------------------------- options shared by convert, check, curves
def _positive(kind):
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
        return value

    return convert


def _quantity(dimension: str):
    def convert(text: str) -> str:
        from .units import parse_quantity

        try:
            parse_quantity(text, dimension, where=dimension)
        except Nml2LutError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return text

    return convert


def _v_range(text: str) -> tuple[str, str]:
    from .units import parse_quantity

    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"{text!r} is not LOW,HIGH (e.g. -100mV,60mV)")
    try:
        low, high = (parse_quantity(part, "voltage", where="--v-range").value for part in parts)
    except Nml2LutError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if not high > low:
        raise argparse.ArgumentTypeError(f"{text!r} is empty: HIGH must be above LOW")
    return parts[0], parts[1]


def _temperature(text: str) -> str | None:
    if text.lower() == "none":
        return None
    from .channel import to_kelvin

    try:
        to_kelvin(text)
    except Nml2LutError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _add_loading(parser: argparse.ArgumentParser, *, tolerance_default) -> None:
    from .sources import DEFAULT_TEMPERATURE

    group = parser.add_argument_group("how channels are loaded (as nml2lut.load_channel)")
    group.add_argument(
        "--temperature",
        type=_temperature,
        default=DEFAULT_TEMPERATURE,
        metavar="T",
        help=f"e.g. 34degC or 307.15K; 'none' for no temperature (default {DEFAULT_TEMPERATURE})",
    )
    group.add_argument(
        "--v-range",
        type=_v_range,
        metavar="LOW,HIGH",
        help="table voltage range, e.g. --v-range=-100mV,60mV (the default)",
    )
    group.add_argument(
        "--tolerance",
        type=_positive(float),
        default=tolerance_default,
        help="bound on the interpolation error: absolute for inf, relative for tau (default 1e-4)",
    )
    group.add_argument("--n-points", type=_positive(int), help="a fixed number of grid points instead of refining")
    group.add_argument(
        "--vshift", type=_quantity("voltage"), help="voltage shift for rates that require vShift, e.g. 0mV"
    )
    group.add_argument(
        "--dt", type=_quantity("time"), help="time step kinetic schemes are tabulated for (default 0.1ms)"
    )
    # fmt: skip


def _add_workers(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("workers (every file runs in a worker process of its own)")
    group.add_argument("-j", "--jobs", type=_positive(int), default=1, help="worker processes (default 1)")
    group.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on this dask.distributed scheduler (pip install 'nml2lut[dask]') instead",
    )
    group.add_argument("--timeout", type=_positive(float), default=120.0, help="seconds per file (default 120)")
    group.add_argument(
        "--memory", type=_positive(float), default=4.0, help="GiB of address space per worker (default 4)"
    )
    # fmt: skip


def _options(args: argparse.Namespace, tolerance=None):
    from .sources import Options
    from .tables import DEFAULT_TOLERANCE

    return Options(
        temperature=args.temperature,
        v_range=args.v_range,
        tolerance=tolerance or args.tolerance or DEFAULT_TOLERANCE,
        n_points=args.n_points,
        vshift=args.vshift,
        dt=args.dt,
    )


class _Usage(Exception):
    """A usage error found after parsing: exit status 2."""


def _progress(args: argparse.Namespace, what: str):
    """A tqdm bar on a terminal; otherwise nothing (file-by-file log lines with -v)."""
    if args.quiet or not sys.stderr.isatty():
        return None, lambda: None
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread
    bar = tqdm(total=0, unit="file", desc=what, file=sys.stderr, dynamic_ncols=True)

    def update(done: int, total: int, path: str, status: str) -> None:
        bar.total = total
        bar.set_postfix_str(f"{status}: {path[-40:]}", refresh=False)
        bar.update(done - bar.n)

    return update, bar.close


def _run_batch(args, function, **kwargs):
    progress, close = _progress(args, args.command)
    memory = int(args.memory * 1024**3)
    try:
        return function(args.paths, jobs=args.jobs, timeout=args.timeout, memory=memory,
                        scheduler=args.scheduler, progress=progress, **kwargs)  # fmt: skip
    except RuntimeError as err:
        if "dask" in str(err):
            raise _Usage(str(err)) from err
        raise
    finally:
        close()


def _counts(counts: dict, order: list[str]) -> str:
    return ", ".join(f"{counts[k]} {k.replace('-', ' ')}" for k in order if k in counts)


def _failure_lines(summary: dict) -> list[str]:
    lines = []
    if summary["failures_by_type"]:
        features = summary["unsupported_features"]
        parts = []
        for name, count in sorted(summary["failures_by_type"].items(), key=lambda kv: (-kv[1], kv[0])):
            detail = (
                f" ({', '.join(f'{k} {v}' for k, v in features.items())})"
                if name == "UnsupportedError" and features
                else ""
            )
            parts.append(f"{name} {count}{detail}")
        lines.append("  failures: " + ", ".join(parts))
    if summary.get("channel_warnings_by_type"):
        counts = ", ".join(f"{k} {v}" for k, v in summary["channel_warnings_by_type"].items())
        lines.append(f"  warnings: {counts} (channels converted; see the report)")
    return lines


def _convert(args: argparse.Namespace) -> int:
    from .batch import convert

    report = _run_batch(args, convert, out=args.output, options=_options(args), force=args.force)
    files, channels = report["summary"]["files"], report["summary"]["channels"]
    file_counts = _counts(files, ["converted", "failed", "skipped", "up-to-date"])
    print(f"nml2lut convert: {files['total']} files ({file_counts}), "
          f"{channels['total']} channels ({_counts(channels, ['converted', 'up-to-date', 'failed'])}) "
          f"in {report['seconds']:.1f} s")  # fmt: skip
    for line in _failure_lines(report["summary"]):
        print(line)
    print(f"  report: {args.output}/report.md, {args.output}/report.json")
    return 1 if files["failed"] or channels["failed"] else 0


def _check(args: argparse.Namespace) -> int:
    from .checks import check, write_check_report

    options = _options(args)
    report = _run_batch(args, check, options=options, tolerance=args.tolerance, points=args.points,
                        jlems=not args.no_jlems)  # fmt: skip
    print(report["jlems"]["note"])
    for f in report["files"]:
        if f.get("error"):
            print(f"  FAILED {f['path']}: {f['error']['type']}: {f['error']['message']}")
        for c in f["channels"]:
            worst = c.get("worst")
            if c["status"] == "failed":
                text = f"{c['error']['type']}: {c['error']['message']}"
            elif worst is None:
                text = c.get("note", "no tables")
            else:
                error_text = f"{worst['max_error']:.2e} ({worst['metric']})"
                text = (f"worst {worst['curve']} {error_text} at {worst['at_mV']:.3f} mV, "
                        f"tolerance {c['tolerance']:g}")  # fmt: skip
            if c["status"] != "ok" or args.verbose:
                print(f"  {c['status'].upper():6s} {f['path']} {c['id']}: {text}")
    files, channels = report["summary"]["files"], report["summary"]["channels"]
    print(
        f"nml2lut check: {files['total']} files ({_counts(files, ['checked', 'failed', 'skipped'])}), "
        f"{channels['total']} channels ({_counts(channels, ['ok', 'breach', 'failed'])}) in {report['seconds']:.1f} s"
    )
    if args.report:
        json_path, md_path = write_check_report(args.report, report)
        print(f"  report: {md_path}, {json_path}")
    return 1 if files["failed"] or channels["breach"] or channels["failed"] else 0


def _curves(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .channel import load_channel, load_channels
    from .plots import plot_curves, sample_curves, write_csv
    from .sources import channel_stems
    from .store import load_tables

    path = Path(args.file)
    if not path.is_file():
        raise _Usage(f"{args.file}: no such file")
    if path.suffix in (".json", ".npz"):
        channels = [load_tables(path)]
        if args.channel is not None and channels[0].id != args.channel:
            raise _Usage(f"{args.file} holds channel {channels[0].id!r}, not {args.channel!r}")
    elif args.channel is not None:
        channels = [load_channel(path, args.channel, **_options(args).api())]
    else:
        channels = load_channels(path, **_options(args).api())
    out = Path(args.output)
    for loaded, stem in zip(channels, channel_stems([c.id for c in channels]), strict=True):
        samples = sample_curves(loaded, None if args.points is None else _points(loaded, args.points))
        png, csv = plot_curves(samples, out / f"{stem}.png"), write_csv(samples, out / f"{stem}.csv")
        print(f"{loaded.id}: {png}, {csv}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    import time

    from .lems import DEFAULT_LEMS_METHOD, LEMS_TOLERANCE, run_lems
    from .lemsout import plot_outputs, write_outputs

    started = time.perf_counter()
    tolerance = LEMS_TOLERANCE if args.tolerance is None else args.tolerance
    results, run = run_lems(args.file, mode=args.mode, target=args.target, method=args.method, tolerance=tolerance,
                            length=None if args.length is None else args.length * 1e-3,
                            step=None if args.step is None else args.step * 1e-3, return_run=True)  # fmt: skip
    elapsed = time.perf_counter() - started
    sim = run.simulation
    written = write_outputs(sim, results, args.output)
    print(f"{sim.id}: {len(results['t']) - 1} steps of {sim.step * 1e3:g} ms, mode {args.mode}, target {args.target}, "
          f"method {args.method or DEFAULT_LEMS_METHOD + ' (default)'}; {elapsed:.1f} s (building, compiling and "
          "running)")  # fmt: skip
    for key, values in results.items():
        if key.startswith("spikes:"):
            print(f"  {key[7:]}: {values.size} spikes")
    for path in written:
        print(f"  wrote {path}")
    if args.plot:
        print(f"  wrote {plot_outputs(sim, results, args.plot)}")
    return 0


def _points(loaded, count: int):
    low, high = (loaded.grid.v_min, loaded.grid.v_max) if loaded.grid is not None else (-0.1, 0.06)
    return np.linspace(low, high, max(2, count))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``nml2lut`` command."""
    parser = argparse.ArgumentParser(prog="nml2lut", description="NeuroML2 ion channels as fast Brian2 models.")
    parser.add_argument("--version", action="version", version=f"nml2lut {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="simulate an HH cell with tables and exactly, compare")
    demo.add_argument("--target", default="numpy", choices=["numpy", "cython"], help="Brian2 target")
    demo.add_argument("--duration", type=float, default=100.0, help="simulated time in ms (default 100)")
    demo.add_argument("--neurons", type=int, default=1000, help="number of cells (default 1000)")
    demo.add_argument("-o", "--output", default="nml2lut-demo.png", help="plot file (PNG)")
    demo.set_defaults(run=_demo)

    convert = commands.add_parser("convert", help="convert every channel of NeuroML files or directories",
                                  description="Convert every channel of every NeuroML file under PATH into tables "
                                  "(.npz) with metadata (.json) that nml2lut.load_tables reads without the NeuroML; "
                                  "write OUT/report.json and OUT/report.md. Up-to-date outputs are skipped."
    )  # fmt: skip
    convert.add_argument("paths", nargs="+", metavar="PATH", help="NeuroML files or directories (searched recursively)")
    convert.add_argument("-o", "--output", required=True, metavar="OUT", help="output directory")
    convert.add_argument("--force", action="store_true", help="convert again what is up to date")
    convert.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    convert.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log each file")
    _add_loading(convert, tolerance_default=None)
    _add_workers(convert)
    convert.set_defaults(run=_convert)

    check = commands.add_parser("check", help="check table accuracy against the exact curves (and jLEMS)",
                                description="Check every channel under PATH (NeuroML files, or .json from convert): "
                                "the worst table error of each curve against its exact expression on a dense grid, "
                                "and jLEMS's curves when Java and pyNeuroML are installed. Exit 1 on a breach."
    )  # fmt: skip
    check.add_argument("paths", nargs="+", metavar="PATH", help="NeuroML files, converted .json, or directories")
    check.add_argument("--points", type=_positive(int), help="points of the dense check grid (default 100003)")
    check.add_argument("--no-jlems", action="store_true", help="do not compare with jLEMS even if it is available")
    check.add_argument("--report", metavar="DIR", help="also write DIR/check-report.json and .md")
    check.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    check.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log each file")
    _add_loading(check, tolerance_default=None)
    _add_workers(check)
    check.set_defaults(run=_check)

    curves = commands.add_parser("curves", help="plot (PNG) and tabulate (CSV) a channel's inf and tau curves",
                                 description="Steady states and time constants of a channel, exact and from its "
                                 "tables, as DIR/<channel>.png and DIR/<channel>.csv.")  # fmt: skip
    curves.add_argument("file", metavar="FILE", help="a NeuroML file or a converted channel (.json)")
    curves.add_argument("--channel", metavar="ID", help="the channel (default: every channel of the file)")
    curves.add_argument("-o", "--output", default=".", metavar="DIR", help="output directory (default .)")
    curves.add_argument("--points", type=_positive(int), help="voltages sampled (default: every 0.1 mV)")
    _add_loading(curves, tolerance_default=None)
    curves.set_defaults(run=_curves)

    simulate = commands.add_parser("simulate", help="run a LEMS simulation of single-compartment cells in Brian2",
                                   description="Run the <Simulation> of a LEMS file with nml2lut's channels and write "
                                   "its OutputFiles (time and columns, SI, tab-separated) and EventOutputFiles "
                                   "(spike times) under DIR, as jLEMS does.")  # fmt: skip
    simulate.add_argument("file", metavar="LEMS_FILE", help="a LEMS file with a <Simulation>")
    simulate.add_argument("-o", "--output", default=".", metavar="DIR", help="output directory (default .)")
    simulate.add_argument("--mode", default="lut", choices=["lut", "exact"], help="tables (default) or exact rates")
    simulate.add_argument("--target", default="numpy", choices=["numpy", "cython", "cpp_standalone"],
                          help="Brian2 code-generation target (default numpy)")  # fmt: skip
    simulate.add_argument("--method", help="integration method: 'euler' (default), jLEMS's own scheme, lags "
                                           "included; 'nml2lut_exponential_euler' (nml2lut.METHOD) without the "
                                           "lags; or any Brian2 method")  # fmt: skip
    simulate.add_argument("--length", type=_positive(float), help="simulated time in ms (default: the simulation's)")
    simulate.add_argument("--step", type=_positive(float), help="integration step in ms (default: the simulation's)")
    simulate.add_argument("--tolerance", type=_positive(float),
                          help="bound on the tables' interpolation error (default: run_lems's, 1e-6)")
    simulate.add_argument("--plot", metavar="PNG", help="also plot the recorded quantities")
    simulate.set_defaults(run=_simulate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from .sources import BatchError

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return args.run(args)
    except (_Usage, BatchError) as err:
        print(f"nml2lut {args.command}: error: {err}", file=sys.stderr)
        return 2
    except Nml2LutError as err:
        print(f"nml2lut: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # e.g. a report or plot that cannot be written
        print(f"nml2lut {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nml2lut: interrupted; what was finished is kept (run again to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
