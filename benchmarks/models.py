"""models: the two benchmark models, built from NeuroML files through nml2lut.

(a) lut4brian's network: 1000 Wang-Buzsaki cells (``wb_na``, ``wb_k`` and a
    leak), 10% random excitatory synapses with 3-5 ms delays, no external
    drive, dt 0.01 ms; parameters, initial state (``v`` uniform in -70..-55 mV,
    ``h = 1``, ``n = 0``) and equations as in lut4brian's own benchmark
    (``tests/test-c-tbl.py`` of github.com/rat-h/lut4brian), per cm^2.  The
    connectivity, delays and initial voltages come from a seeded numpy
    generator, so every variant (and lut4brian itself) runs the same network.

(b) a gating-dominated cell: 10,000 uncoupled single-compartment cells with
    eight channels (seven gated) and thirteen gates (eleven with dynamics),
    all from ``example_channels/``: Wang-Buzsaki Na and K, the Traub-Miles
    delayed rectifier, the two Huguenard-McCormick A-current components, the
    Butera-Rinzel-Smith persistent Na, the two-component Acker-Kopell-White Ih
    and a leak, at 36 degC; each cell driven by its own constant current
    (1 to 5 uA/cm^2 over the population) so that all fire; dt 0.025 ms.

How a model is built is a *variant*: keyword arguments for
`nml2lut.load_channel` and the integration method.  `VARIANTS` is data, so a
new option of the package (``gating="step"``, say) is benchmarked by adding an
entry; a variant whose arguments the installed nml2lut refuses with a
``TypeError`` is reported as not available (`VariantUnavailable`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "example_channels"

# S/m^2 per mS/cm^2, A/m^2 per uA/cm^2, F/m^2 per uF/cm^2
MS_PER_CM2 = 10.0
UA_PER_CM2 = 1e-2
UF_PER_CM2 = 1e-2


@dataclass(frozen=True)
class Variant:
    """How to build a model: ``load`` goes to `nml2lut.load_channel`, ``method`` to the NeuronGroup.

    ``method=None`` is ``nml2lut.METHOD``, the method the README tells users to pass.
    """

    label: str
    load: dict = field(default_factory=dict)
    method: str | None = None
    share: bool = True  # the cell's channels on one grid (nml2lut.share_grid)

    def integrator(self) -> str:
        """The integration method for the NeuronGroup."""
        if self.method is not None:
            return self.method
        import nml2lut

        return getattr(nml2lut, "METHOD", "exponential_euler")


#: The variants every benchmark runs, in table order.  "exact" is the reference;
#: "lut" is what a user gets from nml2lut's defaults (with the README's method).
VARIANTS: dict[str, Variant] = {
    "exact": Variant("exact expressions, exponential Euler", {"mode": "exact"}, "exponential_euler"),
    "lut": Variant("nml2lut default: tables on one grid (share_grid), method=nml2lut.METHOD (tabulated exp-Euler "
                   "gate steps)", {}),
    "lut_own_grids": Variant("tables, each channel on its own grid, method=nml2lut.METHOD", {}, share=False),
    "lut_expeuler": Variant("tables, Brian2's exponential_euler (one exp per gate)", {}, "exponential_euler"),
    "lut_euler": Variant("tables, forward Euler", {}, "euler"),
    "lut_step": Variant("tables, gating='step' (second pass), exponential Euler", {"gating": "step"},
                        "exponential_euler"),
}
REFERENCE = "exact"
DEFAULT = "lut"


class VariantUnavailable(Exception):
    """The installed nml2lut does not accept a variant's arguments."""


@dataclass(frozen=True)
class ChannelSpec:
    """One channel of a cell: where it is, its Brian2 suffix, density (S/m^2) and reversal (V)."""

    file: str
    channel_id: str | None
    name: str
    g: float
    E: float
    temperature: str | None = None


# ---------------------------------------------------------------------------
# (b) the gating-dominated cell
# ---------------------------------------------------------------------------

CELL_B = (
    ChannelSpec("wb_na.channel.nml", None, "Na", 35 * MS_PER_CM2, 0.055),
    ChannelSpec("wb_k.channel.nml", None, "K", 9 * MS_PER_CM2, -0.090),
    ChannelSpec("custom_kdr.channel.nml", "custom_kdr", "Kdr", 2 * MS_PER_CM2, -0.090),
    ChannelSpec("q10_ka.channel.nml", "q10_ka", "KA1", 0.6 * 2 * MS_PER_CM2, -0.090, "36degC"),
    ChannelSpec("q10_ka.channel.nml", "q10_ka2", "KA2", 0.4 * 2 * MS_PER_CM2, -0.090, "36degC"),
    ChannelSpec("inst_nap.channel.nml", None, "NaP", 0.1 * MS_PER_CM2, 0.055),
    ChannelSpec("frac_ih.channel.nml", None, "H", 0.05 * MS_PER_CM2, -0.040, "36degC"),
    ChannelSpec("hh_leak.channel.nml", None, "L", 0.1 * MS_PER_CM2, -0.065),
)
B = {
    "neurons": 10_000,
    "duration": 1.0,  # s
    "dt": 0.025e-3,  # s
    "Cm": 1 * UF_PER_CM2,
    "v0": -0.065,
    "I_min": 1 * UA_PER_CM2,
    "I_max": 5 * UA_PER_CM2,
    "threshold": -0.020,  # V, crossed upwards once per spike
}


def drive_b(n: int) -> np.ndarray:
    """The constant current density (A/m^2) of each of ``n`` cells of model (b)."""
    return B["I_min"] + (B["I_max"] - B["I_min"]) * np.arange(n) / max(n - 1, 1)


# ---------------------------------------------------------------------------
# (a) lut4brian's Wang-Buzsaki network
# ---------------------------------------------------------------------------

CELL_A = (
    ChannelSpec("wb_na.channel.nml", None, "Na", 35 * MS_PER_CM2, 0.055),
    ChannelSpec("wb_k.channel.nml", None, "K", 9 * MS_PER_CM2, -0.090),
    ChannelSpec("hh_leak.channel.nml", None, "L", 0.1 * MS_PER_CM2, -0.065),
)
A = {
    "neurons": 1000,
    "duration": 4.0,  # s (lut4brian's script runs 10 s; the figures are for 4 s)
    "dt": 0.01e-3,  # s
    "Cm": 1 * UF_PER_CM2,
    "p": 0.1,
    "delay": (3e-3, 5e-3),  # s, uniform
    "gsyn": 1e-6 / 1e-4,  # 1 uS on lut4brian's 1 cm^2 cell, as S/m^2
    "Esyn": 0.0,
    "taus": 5e-3,
    "threshold": 0.0,
    "seed": 20240521,
}


@dataclass(frozen=True)
class Network:
    """The random parts of model (a), drawn once from a seeded generator."""

    v0: np.ndarray  # V
    pre: np.ndarray
    post: np.ndarray
    delay: np.ndarray  # s


def network_a(n: int, seed: int = A["seed"]) -> Network:
    """Initial voltages, synapses (each ordered pair with probability p, autapses included) and delays."""
    rng = np.random.default_rng(seed)
    v0 = -0.070 + 0.015 * rng.random(n)
    pre, post = np.nonzero(rng.random((n, n)) < A["p"])
    low, high = A["delay"]
    delay = low + (high - low) * rng.random(pre.size)
    return Network(v0, pre.astype(np.int32), post.astype(np.int32), delay)


# ---------------------------------------------------------------------------
# building
# ---------------------------------------------------------------------------


def load_cell(specs, variant: Variant) -> list:
    """Load the channels of a cell with a variant's arguments, conductances and reversals as constants.

    Raises
    ------
    VariantUnavailable
        The installed nml2lut refuses the arguments (``TypeError``).
    """
    import brian2 as b2

    import nml2lut

    channels = []
    for spec in specs:
        kwargs = dict(variant.load)
        if spec.temperature is not None:
            kwargs["temperature"] = spec.temperature
        try:
            channels.append(nml2lut.load_channel(EXAMPLES / spec.file, spec.channel_id, name=spec.name,
                                                 g=spec.g * b2.siemens / b2.meter**2, E=spec.E * b2.volt, **kwargs))
        except TypeError as err:
            raise VariantUnavailable(f"nml2lut.load_channel refuses {variant.load}: {err}") from err
    return nml2lut.share_grid(channels) if variant.share else channels


def _membrane(specs, channels, extra_current: str = "") -> tuple:
    import brian2 as b2

    currents = " - ".join(f"I_{spec.name}" for spec in specs)
    eqs = b2.Equations(f"dv/dt = (I_app - {currents}{extra_current})/Cm : volt\nI_app : amp/meter**2")
    namespace = {}
    for channel in channels:
        eqs += channel.equations
        namespace.update(channel.namespace)
    return eqs, namespace


def build_b(n: int, variant: Variant):
    """Model (b) in the current Brian2 device; returns (Brian2 objects, spike monitor, channels)."""
    import brian2 as b2

    b2.defaultclock.dt = B["dt"] * b2.second  # before loading: a variant may tabulate for dt
    channels = load_cell(CELL_B, variant)
    eqs, namespace = _membrane(CELL_B, channels)
    namespace["Cm"] = B["Cm"] * b2.farad / b2.meter**2
    threshold = f"v > {B['threshold'] * 1e3!r}*mV"
    group = b2.NeuronGroup(n, eqs, namespace=namespace, method=variant.integrator(), threshold=threshold,
                           refractory=threshold, name="cells")  # fmt: skip
    group.v = B["v0"] * b2.volt
    group.I_app = f"({B['I_min']!r} + {B['I_max'] - B['I_min']!r}*i/{max(n - 1, 1)})*amp/meter**2"  # = drive_b(n)
    for channel in channels:
        channel.init(group)
    monitor = b2.SpikeMonitor(group, name="spikes")
    return [group, monitor], monitor, channels


def build_a(n: int, variant: Variant, network: Network | None = None):
    """Model (a) in the current Brian2 device; returns (Brian2 objects, spike monitor, channels)."""
    import brian2 as b2

    network = network_a(n) if network is None else network
    b2.defaultclock.dt = A["dt"] * b2.second
    channels = load_cell(CELL_A, variant)
    eqs, namespace = _membrane(CELL_A, channels, " + b*gsyn*(Esyn - v)")
    eqs += b2.Equations("db/dt = -b/taus : 1")
    namespace.update(Cm=A["Cm"] * b2.farad / b2.meter**2, gsyn=A["gsyn"] * b2.siemens / b2.meter**2,
                     Esyn=A["Esyn"] * b2.volt, taus=A["taus"] * b2.second)  # fmt: skip
    threshold = f"v > {A['threshold'] * 1e3!r}*mV"
    group = b2.NeuronGroup(n, eqs, namespace=namespace, method=variant.integrator(), threshold=threshold,
                           refractory=threshold, name="cells")  # fmt: skip
    group.v = network.v0 * b2.volt
    group.I_app = 0 * b2.amp / b2.meter**2
    for channel in channels:
        channel.init(group)  # installs any per-step update a variant needs, then lut4brian's start:
    for gate, suffix, value in (("h", "Na", 1.0), ("n", "K", 0.0)):
        # gating="step" keeps the next value in "<gate>_next_<suffix>" and copies it into the
        # state at the start of each step: set both, or the state is overwritten by the steady state.
        for state in (f"{gate}_{suffix}", f"{gate}_next_{suffix}"):
            if state in group.variables:
                setattr(group, state, value)
    synapses = b2.Synapses(group, group, on_pre="b_post += 1", name="synapses")
    if network.pre.size:  # a tiny --quick network may have none
        synapses.connect(i=network.pre, j=network.post)
        synapses.delay = network.delay * b2.second
    monitor = b2.SpikeMonitor(group, name="spikes")
    return [group, synapses, monitor], monitor, channels


BUILDERS = {"a": build_a, "b": build_b}
SIZES = {"a": A, "b": B}
