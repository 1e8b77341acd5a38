"""demo: a Hodgkin-Huxley cell from example_channels/, simulated with tables and exactly.

Builds the same single-compartment cell twice (lookup tables and exact rate
expressions), runs both, and reports spike-time differences and run times.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .channel import load_channel

__all__ = ["DemoResult", "run_demo", "example_channels_dir"]


def example_channels_dir() -> Path:
    """The example_channels folder (beside the package in a checkout or sdist)."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "example_channels", here / "example_channels"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("example_channels/ not found beside the nml2lut package")


@dataclass
class DemoResult:
    """Spike times (s) and wall-clock run times (s) of the two models."""

    spikes: dict[str, np.ndarray]
    run_seconds: dict[str, float]
    t: np.ndarray
    v: dict[str, np.ndarray]
    max_table_error: float

    def spike_differences(self) -> np.ndarray:
        """|lut - exact| for each spike, when both fired as often (else empty)."""
        a, b = self.spikes["lut"], self.spikes["exact"]
        return np.abs(a - b) if a.size == b.size else np.array([])


def _simulate(mode: str, *, target: str, duration: float, n_neurons: int, temperature: str, dt: float):
    import brian2 as b2

    folder = example_channels_dir()
    channels = {
        "Na": load_channel(folder / "hh_na.channel.nml", name="Na", temperature=temperature, mode=mode),
        "K": load_channel(folder / "hh_k.channel.nml", name="K", temperature=temperature, mode=mode),
        "L": load_channel(folder / "hh_leak.channel.nml", name="L", mode=mode),
    }
    eqs = b2.Equations("dv/dt = (I_app - I_Na - I_K - I_L)/Cm : volt\nI_app : amp/meter**2")
    namespace = {"Cm": 1 * b2.uF / b2.cm**2}
    for channel in channels.values():
        eqs += channel.equations
        namespace.update(channel.namespace)
    b2.start_scope()
    b2.prefs.codegen.target = target
    b2.defaultclock.dt = dt * b2.second
    group = b2.NeuronGroup(n_neurons, eqs, namespace=namespace, method="exponential_euler",
                           threshold="v > 0*mV", refractory="v > 0*mV")  # fmt: skip
    group.g_Na, group.g_K, group.g_L = 120 * b2.mS / b2.cm**2, 36 * b2.mS / b2.cm**2, 0.3 * b2.mS / b2.cm**2
    group.E_Na, group.E_K, group.E_L = 50 * b2.mV, -77 * b2.mV, -54.387 * b2.mV
    group.v = -65 * b2.mV
    group.I_app = "(10 + 10*i/N) * uA/cm**2"
    for channel in channels.values():
        channel.init(group)
    spikes = b2.SpikeMonitor(group)
    trace = b2.StateMonitor(group, "v", record=0)
    b2.run(10 * b2.ms)  # compiles and warms up; not timed
    start = time.perf_counter()
    b2.run(duration * b2.second - 10 * b2.ms)
    elapsed = time.perf_counter() - start
    first = spikes.spike_trains()[0] / b2.second
    error = max(c.max_error for c in channels.values())
    return first, elapsed, trace.t / b2.second, trace.v[0] / b2.volt, error


def run_demo(
    *, target: str = "numpy", duration: float = 0.1, n_neurons: int = 1000,
    temperature: str = "6.3degC", dt: float = 1e-5,
) -> DemoResult:  # fmt: skip
    """Simulate the HH cell with tables and exactly; return spikes and timings.

    Parameters
    ----------
    target : str
        Brian2 code generation target (``"numpy"`` or ``"cython"``).
    duration : float
        Simulated time (s).
    n_neurons : int
        Cells, driven by currents from 10 to 20 uA/cm^2 (the spikes reported are neuron 0's).
    temperature : str
        NeuroML temperature text.
    dt : float
        Time step (s).
    """
    spikes, seconds, v, t, error = {}, {}, {}, None, 0.0
    for mode in ("lut", "exact"):
        spikes[mode], seconds[mode], t, v[mode], err = _simulate(
            mode, target=target, duration=duration, n_neurons=n_neurons, temperature=temperature, dt=dt
        )
        error = max(error, err)
    return DemoResult(spikes, seconds, t, v, error)


def plot_demo(result: DemoResult, path: str | Path) -> Path:
    """Save the voltage traces of both models to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(8, 5))
    for mode, style in (("exact", "-"), ("lut", "--")):
        top.plot(result.t * 1e3, result.v[mode] * 1e3, style, label=f"{mode} ({result.run_seconds[mode]:.2f} s)")
    top.set_ylabel("v (mV)")
    top.legend(loc="upper right")
    top.set_title("HH cell from example_channels/: lookup tables vs exact rates")
    bottom.plot(result.t * 1e3, (result.v["lut"] - result.v["exact"]) * 1e3)
    bottom.set_ylabel("lut - exact (mV)")
    bottom.set_xlabel("t (ms)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
