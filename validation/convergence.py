"""convergence: how far the stored jLEMS (and NEURON) spike times are from the converged solution.

Runs one corpus simulation through `nml2lut.run_lems` with its own step
divided by each ``--factors`` value (``step=``), for each ``--methods``, and
prints, per membrane potential, the spike counts and the largest spike-time
difference from jLEMS and from NEURON (``shared/refsims``).  As the step
shrinks, both methods approach the model's converged solution; where that
stays farther from jLEMS than the reference's own tolerance, no integration
scheme other than jLEMS's own (``method="euler"`` at the simulation's step)
can meet it.

    python validation/convergence.py --refsims ../shared/refsims --corpus ../shared/corpus \\
        --only LEMS_ChannelTest --factors 1 4 16 --methods expeuler euler
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nml2lut.refcompare import FALLBACK_THRESHOLD, is_voltage, load_reference, threshold_crossings  # noqa: E402


def _difference(ours: np.ndarray, ref: np.ndarray | None) -> str:
    if ref is None:
        return "-"
    if len(ours) != len(ref):
        return f"counts {len(ours)}/{len(ref)}"
    if not len(ref):
        return "no spikes"
    return f"{1e3 * np.max(np.abs(ours - ref)):.4f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refsims", type=Path, required=True)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--only", required=True, help="substring of the reference's file name")
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--methods", nargs="+", default=["expeuler", "euler"], choices=["expeuler", "euler"],
                        help="expeuler: method=nml2lut.METHOD; euler: jLEMS's scheme (run_lems's default)")
    parser.add_argument("--mode", default="exact", choices=["exact", "lut"])
    parser.add_argument("--target", default="cython", choices=["numpy", "cython", "cpp_standalone"])
    args = parser.parse_args(argv)

    import nml2lut

    matches = [p for p in sorted(args.refsims.glob("*.npz")) if args.only in p.name]
    if len(matches) != 1:
        parser.error(f"--only {args.only!r} matches {len(matches)} references")
    reference = load_reference(matches[0])
    lems = reference.lems_path(args.corpus)
    dt = reference.meta["dt_s"]
    print(f"{reference.file}: step {dt * 1e3:g} ms, mode {args.mode}, target {args.target}")
    for method in args.methods:
        for factor in args.factors:
            started = time.perf_counter()
            result = nml2lut.run_lems(lems, mode=args.mode, target=args.target, step=dt / factor,
                                      method=nml2lut.METHOD if method == "expeuler" else method)  # fmt: skip
            seconds = time.perf_counter() - started
            for quantity in reference.quantities:
                if not is_voltage(quantity) or quantity not in result:
                    continue
                threshold = reference.threshold(quantity)
                ours = threshold_crossings(result["t"], result[quantity],
                                           FALLBACK_THRESHOLD if threshold is None else threshold)  # fmt: skip
                neuron = reference.neuron_spikes.get(quantity) if reference.neuron_valid else None
                print(f"  {method:7s} step/{factor:<3d} {quantity}: {len(ours)} spikes; "
                      f"from jLEMS {_difference(ours, reference.spikes.get(quantity))}, "
                      f"from NEURON {_difference(ours, neuron)}  ({seconds:.0f} s)", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
