"""cli: the ``nml2lut`` command; subcommands call the API and map outcomes to exit codes.

Exit status: 0 success, 1 a failure or check breach, 2 usage errors (argparse).
"""

from __future__ import annotations

import argparse
import logging
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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return args.run(args)
    except Nml2LutError as err:
        print(f"nml2lut: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
