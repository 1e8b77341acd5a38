"""Benchmark: HH cells from example_channels/ with lookup tables vs exact expressions.

Each (target, mode) runs in its own process (cpp_standalone needs a fresh
device; fresh processes also keep timings honest).  Prints run times, the
speed-up of tables over exact expressions per target, and spike-time
differences between the two.

    python benchmarks/bench_hh.py [--neurons 1000] [--duration 200] [--targets numpy cython cpp_standalone]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "example_channels"


def simulate(target: str, mode: str, neurons: int, duration_ms: float) -> dict:
    """Build and run the model once; return run time and spike trains."""
    import brian2 as b2

    import nml2lut

    workdir = tempfile.mkdtemp(prefix="nml2lut-bench-")
    if target == "cpp_standalone":
        b2.set_device("cpp_standalone", directory=workdir, build_on_run=False)
    else:
        b2.prefs.codegen.target = target
    channels = [
        nml2lut.load_channel(EXAMPLES / "hh_na.channel.nml", name="Na", temperature="6.3degC", mode=mode),
        nml2lut.load_channel(EXAMPLES / "hh_k.channel.nml", name="K", temperature="6.3degC", mode=mode),
        nml2lut.load_channel(EXAMPLES / "hh_leak.channel.nml", name="L", mode=mode),
    ]
    eqs = b2.Equations("dv/dt = (I_app - I_Na - I_K - I_L)/Cm : volt\nI_app : amp/meter**2")
    namespace = {"Cm": 1 * b2.uF / b2.cm**2}
    for channel in channels:
        eqs += channel.equations
        namespace.update(channel.namespace)
    b2.defaultclock.dt = 0.01 * b2.ms
    group = b2.NeuronGroup(neurons, eqs, namespace=namespace, method="exponential_euler",
                           threshold="v > 0*mV", refractory="v > 0*mV", name="cells")  # fmt: skip
    group.g_Na, group.g_K, group.g_L = 120 * b2.mS / b2.cm**2, 36 * b2.mS / b2.cm**2, 0.3 * b2.mS / b2.cm**2
    group.E_Na, group.E_K, group.E_L = 50 * b2.mV, -77 * b2.mV, -54.387 * b2.mV
    group.v = -65 * b2.mV
    group.I_app = "(7 + 13*i/N) * uA/cm**2"
    for channel in channels:
        channel.init(group)
    spikes = b2.SpikeMonitor(group, name="spikes")
    if target == "cpp_standalone":
        b2.run(duration_ms * b2.ms)
        b2.device.build(directory=workdir, compile=True, run=False)
        start = time.perf_counter()
        b2.device.run(directory=workdir)
        seconds = time.perf_counter() - start
    else:
        b2.run(0.1 * b2.ms)  # code generation and compilation, not timed
        start = time.perf_counter()
        b2.run(duration_ms * b2.ms - 0.1 * b2.ms)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "i": spikes.i[:].tolist(), "t": (spikes.t[:] / b2.second).tolist()}


def spike_difference(a: dict, b: dict, neurons: int) -> tuple[float, int]:
    """Worst spike-time difference (s) over neurons with equal counts, and how many neurons differ in count."""
    worst, mismatched = 0.0, 0
    ia, ta, ib, tb = (np.asarray(x) for x in (a["i"], a["t"], b["i"], b["t"]))
    for n in range(neurons):
        x, y = np.sort(ta[ia == n]), np.sort(tb[ib == n])
        if x.size != y.size:
            mismatched += 1
        elif x.size:
            worst = max(worst, float(np.max(np.abs(x - y))))
    return worst, mismatched


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=200.0, help="ms")
    parser.add_argument("--targets", nargs="+", default=["numpy", "cython", "cpp_standalone"])
    parser.add_argument("--worker", nargs=2, metavar=("TARGET", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(simulate(*args.worker, args.neurons, args.duration)))
        return 0
    print(f"HH cells from example_channels/: {args.neurons} neurons, {args.duration:g} ms, dt 0.01 ms, "
          "exponential Euler")  # fmt: skip
    print(f"{'target':15s} {'exact (s)':>10s} {'lut (s)':>10s} {'speed-up':>9s} {'max |dt_spike|':>15s}")
    for target in args.targets:
        results = {}
        for mode in ("exact", "lut"):
            command = [sys.executable, __file__, "--worker", target, mode,
                       "--neurons", str(args.neurons), "--duration", str(args.duration)]  # fmt: skip
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[mode] = json.loads(out.strip().splitlines()[-1])
        worst, mismatched = spike_difference(results["lut"], results["exact"], args.neurons)
        exact_s, lut_s = results["exact"]["seconds"], results["lut"]["seconds"]
        note = f" ({mismatched} neurons differ in spike count)" if mismatched else ""
        print(f"{target:15s} {exact_s:10.3f} {lut_s:10.3f} {exact_s / lut_s:8.2f}x {worst * 1e3:12.4f} ms{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
