"""lut4brian's benchmark, a Wang-Buzsaki network, tabulated by `nml2lut.tabulate` with one call.

The model is lut4brian's own benchmark (1000 Wang-Buzsaki cells, 10% random
excitatory synapses with 3-5 ms delays, forward Euler, dt 0.01 ms), with the
rate functions written out as lut4brian's exact version writes them.  It runs
in three versions, each in a fresh process (``cpp_standalone`` needs a fresh
device, and fresh processes keep timings honest):

``exact``
    the equations as written;
``tabulate``
    ``nml2lut.tabulate(EQUATIONS)``: nothing else changes;
``lookup``
    lut4brian's hand-made tables (1 mV step, -100 to 50 mV), passed to Brian2
    with `nml2lut.lookup_function`, the replacement of lut4brian's ``lutinterpol``.

It prints the run time of each (code generation and compilation excluded) and
the largest spike-time difference from the exact model::

    python examples/wang_buzsaki_tabulate.py --target cpp_standalone --duration 1000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

MODES = ("exact", "tabulate", "lookup")

# lut4brian's exact benchmark model (its tests/test-c-org.py), unchanged.
EQUATIONS = """
dv/dt = (-gNa*m**3*h*(v-ENa)-gK*n**4*(v-EK)-gL*(v-EL)+I+b*gsyn*(Esyn-v))/Cm : volt
m       = alpha_m/(alpha_m+beta_m)          : 1
alpha_m = 0.1*10./exprel(-(v/mV+35.)/(10.)) : 1
beta_m  = 4*exp(-(v/mV+60.)/(18.))          : 1
dh/dt   = 5*(alpha_h*(1-h)-beta_h*h)/ms     : 1
alpha_h = 0.07*exp(-(v/mV+58.)/(20.))       : 1
beta_h  = 1./(exp(-0.1*(v/mV+28.))+1.)      : 1
dn/dt   = 5*(alpha_n*(1-n)-beta_n*n)/ms     : 1
alpha_n = 0.01*10/exprel(-(v/mV+34.)/(10.)) : 1
beta_n  = 0.125*exp(-(v/mV+44.)/(80.))      : 1
db/dt   = -b/taus                           : 1
I : amp
"""

# lut4brian's table version of the same model (its README): curves looked up by column.
LOOKUP_EQUATIONS = """
dv/dt = (-gNa*minf**3*h*(v-ENa)-gK*n**4*(v-EK)-gL*(v-EL)+I+b*gsyn*(Esyn-v))/Cm : volt
minf    = lut(v,0) : 1
hinf    = lut(v,1) : 1
htau    = lut(v,2) : 1
ninf    = lut(v,3) : 1
ntau    = lut(v,4) : 1
dh/dt   = 5*(hinf-h)/htau/ms  : 1
dn/dt   = 5*(ninf-n)/ntau/ms  : 1
db/dt   = -b/taus             : 1
I : amp
"""


def parameters() -> dict:
    from brian2 import ms, msiemens, mV, uF, usiemens

    return {"Cm": 1 * uF, "gL": 0.1 * msiemens, "EL": -65 * mV, "ENa": 55 * mV, "EK": -90 * mV,
            "gNa": 35 * msiemens, "gK": 9 * msiemens, "taus": 5 * ms, "gsyn": 1 * usiemens, "Esyn": 0 * mV}  # fmt: skip


def lut4brian_tables():
    """lut4brian's README tables (1 mV step from -100 to 50 mV) as a lookup Function of v."""
    from brian2 import mV

    from nml2lut.tabulate import lookup_function

    def exprel(y):
        return np.where(y == 0, 1.0, np.expm1(y) / np.where(y == 0, 1.0, y))

    x = np.linspace(-100, 50, 151)
    alpha_m, beta_m = 0.1 * 10 / exprel(-(x + 35) / 10), 4 * np.exp(-(x + 60) / 18)
    alpha_h, beta_h = 0.07 * np.exp(-(x + 58) / 20), 1 / (np.exp(-0.1 * (x + 28)) + 1)
    alpha_n, beta_n = 0.01 * 10 / exprel(-(x + 34) / 10), 0.125 * np.exp(-(x + 44) / 80)
    htau, ntau = 1 / (alpha_h + beta_h), 1 / (alpha_n + beta_n)
    columns = [alpha_m / (alpha_m + beta_m), alpha_h * htau, htau, alpha_n * ntau, ntau]
    return lookup_function(np.column_stack(columns), -100 * mV, 50 * mV, name="lut")


def simulate(target: str, mode: str, neurons: int, duration_ms: float) -> dict:
    """Build and run one version; return the run time, the spikes and (for tabulate) the report."""
    import brian2 as b2

    from nml2lut.tabulate import tabulate

    workdir = tempfile.mkdtemp(prefix="nml2lut-wb-")
    if target == "cpp_standalone":
        b2.set_device("cpp_standalone", directory=workdir, build_on_run=False)
    else:
        b2.prefs.codegen.target = target
    b2.seed(4321)
    b2.defaultclock.dt = 0.01 * b2.ms
    namespace = parameters()
    report = ""
    if mode == "exact":
        equations = b2.Equations(EQUATIONS)
    elif mode == "tabulate":
        tabulated = tabulate(EQUATIONS, namespace=namespace)
        equations, report = tabulated.equations, str(tabulated)
        namespace.update(tabulated.namespace)
    else:
        equations, namespace["lut"] = b2.Equations(LOOKUP_EQUATIONS), lut4brian_tables()
    group = b2.NeuronGroup(neurons, equations, threshold="v > 0*mV", refractory="v > 0*mV", method="euler",
                           namespace=namespace, name="cells")  # fmt: skip
    group.v = "(-70 + rand()*15)*mV"
    group.h = 1
    synapses = b2.Synapses(group, group, on_pre="b_post += 1", name="synapses")
    synapses.connect(p=0.1)
    synapses.delay = "(3 + rand()*2)*ms"
    spikes = b2.SpikeMonitor(group, name="spikes")
    if target == "cpp_standalone":
        b2.run(duration_ms * b2.ms)
        b2.device.build(directory=workdir, compile=True, run=False)
        start, cpu = time.perf_counter(), _cpu_seconds()
        b2.device.run(directory=workdir)
    else:
        b2.run(0.1 * b2.ms)  # code generation and compilation, not timed
        start, cpu = time.perf_counter(), _cpu_seconds()
        b2.run(duration_ms * b2.ms - 0.1 * b2.ms)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    spike_t = (spikes.t[:] / b2.second).tolist()
    return {"seconds": seconds, "cpu": cpu, "i": spikes.i[:].tolist(), "t": spike_t, "report": report}


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (cpp_standalone runs its binary as a child).

    On a shared machine this is steadier than the wall-clock time, which also counts waiting.
    """
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _nearest(t: np.ndarray, partners: np.ndarray) -> np.ndarray:
    """Distance from each time in ``t`` to the nearest time in ``partners`` (infinity if there is none)."""
    if partners.size == 0:
        return np.full(t.shape, np.inf)
    k = np.clip(np.searchsorted(partners, t), 1, partners.size - 1) if partners.size > 1 else np.zeros(t.size, int)
    return np.minimum(np.abs(t - partners[k]), np.abs(t - partners[np.maximum(k - 1, 0)]))


def spike_difference(a: dict, b: dict, neurons: int, duration: float, within: float = 0.2e-3):
    """Compare two rasters cell by cell: every spike before ``duration - within`` (s) needs a partner.

    Returns the largest distance from a spike to its nearest partner in the other
    raster (same cell), and the first time a spike has none within ``within``
    (infinity when every spike has one).  A recurrent network is chaotic, so any
    difference in arithmetic eventually grows.
    """
    worst, first = 0.0, np.inf
    ia, ta, ib, tb = (np.asarray(x) for x in (a["i"], a["t"], b["i"], b["t"]))
    for n in range(neurons):
        x, y = np.sort(ta[ia == n]), np.sort(tb[ib == n])
        for t, partners in ((x, y), (y, x)):
            t = t[t < duration - within]  # a spike this close to the end may have its partner after it
            distance = _nearest(t, partners)
            if distance.size:
                worst = max(worst, float(distance.max()))
                far = np.flatnonzero(distance > within)
                first = min(first, t[far[0]]) if far.size else first
    return worst, first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    targets = ["numpy", "cython", "cpp_standalone"]
    parser.add_argument("--target", nargs="+", default=["cpp_standalone"], choices=targets)
    parser.add_argument("--duration", type=float, default=1000.0, help="simulated time (ms)")
    parser.add_argument("--neurons", type=int, default=1000)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--worker", nargs=2, metavar=("TARGET", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(simulate(*args.worker, args.neurons, args.duration)))
        return 0
    print(f"Wang-Buzsaki network (lut4brian's benchmark): {args.neurons} cells, {args.duration:g} ms, dt 0.01 ms")
    for target in args.target:
        results = {}
        for mode in args.modes:
            command = [sys.executable, __file__, "--worker", target, mode,
                       "--neurons", str(args.neurons), "--duration", str(args.duration)]  # fmt: skip
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[mode] = json.loads(out.strip().splitlines()[-1])
        if results.get("tabulate", {}).get("report"):
            print(results["tabulate"]["report"])
        for mode, result in results.items():
            line = f"{target:15s} {mode:9s} {result['seconds']:7.2f} s ({result['cpu']:6.2f} s CPU) "
            line += f"{len(result['t']):7d} spikes"
            if mode != "exact" and "exact" in results:
                worst, first = spike_difference(result, results["exact"], args.neurons, args.duration / 1e3)
                speedup = results["exact"]["cpu"] / result["cpu"]
                line += f"  {speedup:5.2f}x less CPU than exact; "
                if np.isfinite(first):
                    line += f"every spike within 0.2 ms of an exact one until {first * 1e3:.2f} ms"
                else:
                    line += f"max |spike time - exact| {worst * 1e3:.3f} ms"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
