"""lut4brian_network: lut4brian's own Wang-Buzsaki network, for comparison with nml2lut.

lut4brian (PyPI ``lut4brian``, github.com/rat-h/lut4brian) is used as its
README and its benchmark ``tests/test-c-tbl.py`` show: the module globals
``Xmin``, ``Xmax``, ``dX`` and ``tbl`` (rows m_inf, h_inf, h_tau, n_inf, n_tau
on -100..50 mV in 1 mV steps, tau in ms without the factor phi = 5), then
``lutinit()``, which writes ``lut4brian.c`` into the working directory, and
equations that call ``lutinterpol(v/mV, k)``, integrated by forward Euler.
The parameters are the benchmark's (per cell, Cm = 1 uF); only the random
parts (initial ``v``, synapses, delays) come from `models.network_a`, so that
lut4brian and nml2lut run the very same network.

lut4brian records the working directory when it is *imported* (its C++ and
Cython implementations include ``lut4brian.c`` from there): import it only
after changing into a scratch directory, as `bench_speed`'s worker does.

Run from the repository root (exact expressions, nml2lut's default and
lut4brian, cpp_standalone, spike rasters compared)::

    python benchmarks/lut4brian_network.py [--neurons 1000] [--duration 4000] [--repeats 3]
"""

from __future__ import annotations

import os
import sys

import models
import numpy as np

# lut4brian's benchmark, verbatim apart from the namespace being explicit.
EQUATIONS = """
dv/dt = (-gNa*minf**3*h*(v-ENa)-gK*n**4*(v-EK)-gL*(v-EL)+I+b*gsyn*(Esyn-v))/Cm : volt
minf    = lutinterpol(v/mV,0) : 1
hinf    = lutinterpol(v/mV,1) : 1
htau    = lutinterpol(v/mV,2) : 1
ninf    = lutinterpol(v/mV,3) : 1
ntau    = lutinterpol(v/mV,4) : 1
dh/dt   = 5*(hinf-h)/htau/ms  : 1
dn/dt   = 5*(ninf-n)/ntau/ms  : 1
db/dt   = -b/taus             : 1
I : amp
"""


def available() -> tuple[bool, str]:
    """Whether lut4brian can be imported, and why not."""
    try:
        import importlib.util

        if importlib.util.find_spec("lut4brian") is None:
            return False, "lut4brian not installed (pip install lut4brian)"
    except (ImportError, ValueError) as err:
        return False, f"lut4brian not importable: {err}"
    return True, ""


def tables() -> tuple[float, float, float, np.ndarray]:
    """lut4brian's README tables: (Xmin, Xmax, dX, tbl) with rows m_inf, h_inf, h_tau, n_inf, n_tau."""
    from brian2 import exprel

    x = np.linspace(-100, 50, 151)
    alpha_m = 0.1 * 10.0 / exprel(-(x + 35.0) / 10.0)
    beta_m = 4 * np.exp(-(x + 60.0) / 18.0)
    minf = alpha_m / (alpha_m + beta_m)
    alpha_h = 0.07 * np.exp(-(x + 58.0) / 20.0)
    beta_h = 1.0 / (np.exp(-0.1 * (x + 28.0)) + 1.0)
    htau = 1.0 / (alpha_h + beta_h)
    hinf = alpha_h * htau
    alpha_n = 0.01 * 10 / exprel(-(x + 34.0) / 10.0)
    beta_n = 0.125 * np.exp(-(x + 44.0) / 80.0)
    ntau = 1.0 / (alpha_n + beta_n)
    ninf = alpha_n * ntau
    return -100.0, 50.0, 1.0, np.array([minf, hinf, htau, ninf, ntau])


def build(n: int, network: models.Network | None = None):
    """lut4brian's network in the current Brian2 device; returns (Brian2 objects, spike monitor).

    The working directory must be a scratch directory, and the one lut4brian
    was imported in.
    """
    import brian2 as b2
    import lut4brian.lut4brian as lut
    from brian2 import amp, mS, ms, msiemens, mV, uF, usiemens

    included = lut.lutinterpol.implementations["cpp"].compiler_kwds.get("include_dirs", [])
    if os.getcwd() not in included:
        raise RuntimeError(f"lut4brian was imported in {included}, not in the working directory {os.getcwd()}")
    network = models.network_a(n) if network is None else network
    lut.Xmin, lut.Xmax, lut.dX, lut.tbl = tables()
    lut.lutinit()  # writes lut4brian.c into the working directory
    b2.defaultclock.dt = models.A["dt"] * b2.second
    namespace = {
        "Cm": 1.0 * uF, "gL": 0.1 * msiemens, "EL": -65.0 * mV, "ENa": 55.0 * mV, "EK": -90.0 * mV,
        "gNa": 35.0 * msiemens, "gK": 9.0 * msiemens, "taus": 5 * ms, "gsyn": 1.0 * usiemens, "Esyn": 0 * mV,
        "lutinterpol": lut.lutinterpol, "mV": mV, "ms": ms, "mS": mS,
    }  # fmt: skip
    group = b2.NeuronGroup(n, EQUATIONS, threshold="v>0.*mV", refractory="v>0.*mV", method="euler",
                           namespace=namespace, name="cells")  # fmt: skip
    group.v = network.v0 * b2.volt
    group.h = 1
    group.I = 0 * amp
    synapses = b2.Synapses(group, group, on_pre="b_post += 1", name="synapses")
    if network.pre.size:
        synapses.connect(i=network.pre, j=network.post)
        synapses.delay = network.delay * b2.second
    monitor = b2.SpikeMonitor(group, name="spikes")
    return [group, synapses, monitor], monitor


def main(argv: list[str] | None = None) -> int:
    import bench_speed

    argv = sys.argv[1:] if argv is None else argv
    return bench_speed.main(["--model", "a", "--targets", "cpp_standalone", "--variants", "exact", "lut",
                             "lut4brian", "--no-write", *argv])  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
