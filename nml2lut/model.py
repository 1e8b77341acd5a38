"""model: the intermediate representation of a channel, between parsing and tables.

Frozen dataclasses of SI floats and expression trees (`nml2lut.expr`).  Every
curve is a tree over the run-time inputs (``v`` in volts, later ``caConc`` in
mol/m^3) and the load-time symbols (``temperature`` in kelvin), so one parsed
channel can be bound to any temperature without parsing again.

Gate kinds are the normal forms every NeuroML2 HH-family gate reduces to:

``"dynamic"``
    ``dq/dt = (inf - q)/tau``.
``"instantaneous"``
    ``q = inf``.
``"fractional"``
    ``q = sum(fraction_i * q_i)`` over dynamic subgates.
``"kinetic"``
    A kinetic scheme: occupancies of states linked by transitions with
    forward and reverse rates; ``q`` = the summed occupancy of open states
    (weighted by their relative conductance).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from . import expr
from .errors import ModelError

__all__ = ["SubGate", "KineticState", "Transition", "Gate", "Channel", "GATE_KINDS", "bind"]

GATE_KINDS = ("dynamic", "instantaneous", "fractional", "kinetic")


@dataclass(frozen=True)
class SubGate:
    """One component of a fractional gate: a dynamic gate with a conductance share."""

    id: str
    fraction: float
    inf: expr.Node
    tau: expr.Node


@dataclass(frozen=True)
class KineticState:
    """A state of a kinetic scheme and its share of the conductance (0 closed, 1 open)."""

    id: str
    relative_conductance: float


@dataclass(frozen=True)
class Transition:
    """A transition of a kinetic scheme: rates (1/s) from ``source`` to ``target`` and back."""

    id: str
    source: str
    target: str
    rf: expr.Node
    rr: expr.Node


@dataclass(frozen=True)
class Gate:
    """A gate in normal form.

    Attributes
    ----------
    id : str
        The gate id from the file.
    kind : str
        One of `GATE_KINDS`.
    instances : int
        The exponent of the gate in the open fraction.
    inf, tau : Node or None
        Steady state (dimensionless) and time constant (seconds, rate scale
        already applied) as trees; ``tau`` is None for instantaneous gates and
        both are None for fractional ones.
    alpha, beta : Node or None
        Opening and closing rates (1/s), for gates that define them; ``inf``
        and ``tau`` may refer to them as the symbols ``alpha`` and ``beta``.
    subgates : tuple of SubGate
        The components of a fractional gate.
    states, transitions : tuples of KineticState and Transition
        The scheme of a kinetic gate.
    fcond : Node or None
        The gate's factor in the open fraction as a tree of the symbol ``q``
        (custom gate types); None for the standard ``q^instances``.
    stale_rates : tuple of (str, bool)
        ``("inf" | "tau", reads_v)`` for a curve computed by a child component
        (``steadyState``, ``timeCourse``) from the gate's ``alpha`` and ``beta``:
        jLEMS steps children before their parent, so that child reads the rates
        the gate computed a step before (`nml2lut.cell` reproduces this in
        jLEMS's scheme); ``reads_v`` if the child also reads ``v`` itself.
    element : str
        Where the gate is defined (file:line and element), for messages.
    """

    id: str
    kind: str
    instances: int
    inf: expr.Node | None = None
    tau: expr.Node | None = None
    alpha: expr.Node | None = None
    beta: expr.Node | None = None
    subgates: tuple[SubGate, ...] = ()
    states: tuple[KineticState, ...] = ()
    transitions: tuple[Transition, ...] = ()
    fcond: expr.Node | None = None
    element: str = ""
    stale_rates: tuple[tuple[str, bool], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in GATE_KINDS:
            raise ModelError(f"gate {self.id!r}: unknown kind {self.kind!r}")
        if self.instances < 1:
            raise ModelError(f"gate {self.id!r}: instances must be >= 1, got {self.instances}")

    def curves(self) -> dict[str, expr.Node]:
        """The curves to tabulate, keyed ``"inf"``/``"tau"`` or ``"sub/inf"``...

        ``alpha`` and ``beta`` are substituted, so each tree depends only on the
        run-time inputs and load-time symbols.
        """
        rates = {k: t for k, t in (("alpha", self.alpha), ("beta", self.beta)) if t is not None}
        if self.kind == "kinetic":
            out = {}
            for transition in self.transitions:
                out[f"{transition.id}/rf"] = transition.rf
                out[f"{transition.id}/rr"] = transition.rr
            return out
        if self.kind == "fractional":
            out = {}
            for sub in self.subgates:
                out[f"{sub.id}/inf"] = sub.inf
                out[f"{sub.id}/tau"] = sub.tau
            return out
        out = {"inf": expr.substitute(self.inf, rates)}
        if self.kind == "dynamic":
            out["tau"] = expr.substitute(self.tau, rates)
        return out


@dataclass(frozen=True)
class Channel:
    """An ion channel in normal form.

    Attributes
    ----------
    id : str
        The channel id from the file.
    kind : str
        ``"gated"`` or ``"passive"``.
    conductance : float
        Single-channel conductance (S); densities are given per cell.
    species : str or None
        The ion, when the file names it.
    gates : tuple of Gate
        In file order.
    conductance_scale : Node
        Factor multiplying the open fraction (``q10ConductanceScaling``...).
    source : str
        The file that defines the channel.
    line : int or None
        The line of its element there.
    temperature : float or None
        The temperature (K) the channel has been bound to, if any.
    vshift : float or None
        The voltage shift (V) rates that require ``vShift`` see: the
        ``vShift`` of an ``ionChannelVShift``, or the one it was bound to.
    """

    id: str
    kind: str
    conductance: float
    species: str | None
    gates: tuple[Gate, ...]
    conductance_scale: expr.Node = field(default_factory=lambda: expr.Num(1.0))
    source: str = ""
    line: int | None = None
    temperature: float | None = None
    vshift: float | None = None

    @property
    def where(self) -> str:
        place = f"{self.source}:{self.line}" if self.line else self.source
        return f"{place}: channel {self.id!r}"

    def needs(self, symbol: str) -> bool:
        """Whether any curve or the conductance scale depends on ``symbol`` (``"temperature"``...)."""
        trees = [self.conductance_scale]
        for gate in self.gates:
            trees.extend(gate.curves().values())
        return any(symbol in expr.free_symbols(t) for t in trees)


def _bind_tree(tree: expr.Node, values: dict[str, expr.Node]) -> expr.Node:
    return expr.fold_constants(expr.substitute(tree, values))


def _bind_gate(gate: Gate, values: dict[str, expr.Node]) -> Gate:
    def b(tree):
        return None if tree is None else _bind_tree(tree, values)

    subgates = tuple(replace(s, inf=b(s.inf), tau=b(s.tau)) for s in gate.subgates)
    transitions = tuple(replace(t, rf=b(t.rf), rr=b(t.rr)) for t in gate.transitions)
    return replace(
        gate,
        transitions=transitions,
        inf=b(gate.inf),
        tau=b(gate.tau),
        alpha=b(gate.alpha),
        beta=b(gate.beta),
        subgates=subgates,
    )


def fix_symbol(channel: Channel, symbol: str, value: float) -> Channel:
    """``channel`` with the run-time input ``symbol`` (``"caConc"``...) held at ``value`` (SI).

    A cell without a concentration model gives its channels a concentration
    of 0, as the NeuroML2 core types do; folding it in keeps 2-D tables away.
    """
    if not channel.needs(symbol):
        return channel
    values = {symbol: expr.Num(float(value))}
    return replace(
        channel,
        gates=tuple(_bind_gate(g, values) for g in channel.gates),
        conductance_scale=_bind_tree(channel.conductance_scale, values),
    )


def bind(channel: Channel, temperature: float | None, vshift: float | None = None) -> Channel:
    """Fold the temperature (K) and voltage shift (V) into every curve of ``channel``.

    ``vshift`` defaults to the channel's own (``ionChannelVShift``).

    Raises
    ------
    ModelError
        The channel depends on temperature (q10 settings, or a type that reads
        ``temperature``) or on ``vShift`` and no value was given.
    """
    vshift = channel.vshift if vshift is None else vshift
    values: dict[str, expr.Node] = {}
    for symbol, value, hint in (("temperature", temperature, "temperature='34degC'"), ("vShift", vshift, "vshift='0mV'")):
        if value is not None:
            values[symbol] = expr.Num(float(value))
        elif channel.needs(symbol):
            what = "temperature (q10 or a temperature-dependent type)" if symbol == "temperature" else "vShift"
            raise ModelError(f"{channel.where} depends on {what}; pass {hint.split('=')[0]}=, e.g. {hint}")
    if not values:
        return channel
    return replace(
        channel,
        gates=tuple(_bind_gate(g, values) for g in channel.gates),
        conductance_scale=_bind_tree(channel.conductance_scale, values),
        temperature=None if temperature is None else float(temperature),
        vshift=vshift,
    )
