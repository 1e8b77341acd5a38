"""parse.lems: a LEMS ``<Simulation>`` and the network it runs -> `SimulationSpec`.

Reads the structure of the NeuroML2 core network, input and simulation types:
populations (``population`` with a size, or a ``populationList`` of
instances), inputs (``explicitInput``, ``inputList`` with ``input``/``inputW``),
continuous projections (graded and silent synapses), electrical projections
(gap junctions), chemical projections (``expOneSynapse``, ``expTwoSynapse``,
``alphaSynapse``, with weights and delays), the
simulation's length and step, and its ``OutputFile``/``EventOutputFile``
(or, without them, its ``Display`` lines).  Values are SI floats.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from .. import expr
from ..errors import ModelError, UnitError, UnsupportedError
from .channels import Library
from .cells import find_element
from .componenttypes import Component
from .xmlread import describe as _where
from .xmlread import local_name

__all__ = ["SimulationSpec", "PopulationSpec", "InputSpec", "ConnectionSpec", "SpikingConnectionSpec", "OutputSpec",
           "EventOutputSpec",
           "read_simulation", "CellRef", "parse_cell_ref"]  # fmt: skip

INPUT_TYPES = frozenset({"pulseGenerator", "sineGenerator", "rampGenerator", "voltageClamp"})
CONTINUOUS_TYPES = frozenset({"gradedSynapse", "silentSynapse", "linearGradedSynapse", "gapJunction"})
SPIKING_TYPES = frozenset({"expOneSynapse", "expTwoSynapse", "alphaSynapse"})


@dataclass(frozen=True)
class PopulationSpec:
    id: str
    component: str
    size: int
    where: str


@dataclass(frozen=True)
class InputSpec:
    """One input component feeding one cell."""

    population: str
    index: int
    component: str
    kind: str
    parameters: dict[str, float]
    weight: float
    where: str


@dataclass(frozen=True)
class ConnectionSpec:
    """One continuous connection: the post side's component feeds the post cell, the pre side's the pre cell."""

    projection: str
    pre: tuple[str, int]
    post: tuple[str, int]
    pre_component: tuple[str, dict[str, float]]
    post_component: tuple[str, dict[str, float]]
    weight: float
    where: str
    pre_component_id: str = ""
    post_component_id: str = ""


@dataclass(frozen=True)
class SpikingConnectionSpec:
    """One chemical connection: a spike of the pre cell reaches the post cell's synapse after ``delay``."""

    projection: str
    pre: tuple[str, int]
    post: tuple[str, int]
    synapse: tuple[str, dict[str, float]]
    weight: float
    delay: float
    where: str


@dataclass(frozen=True)
class OutputSpec:
    id: str
    file_name: str
    columns: tuple[tuple[str, str], ...]  # (column id, quantity)


@dataclass(frozen=True)
class EventOutputSpec:
    id: str
    file_name: str
    format: str
    selections: tuple[tuple[str, str], ...]  # (selection id, select path)


@dataclass(frozen=True)
class SimulationSpec:
    """A LEMS simulation of a network of single-compartment cells, in SI."""

    id: str
    length: float
    step: float
    network: str
    prefix: str
    temperature: float | None
    populations: tuple[PopulationSpec, ...]
    inputs: tuple[InputSpec, ...]
    connections: tuple[ConnectionSpec, ...]
    spiking: tuple[SpikingConnectionSpec, ...]
    outputs: tuple[OutputSpec, ...]
    event_outputs: tuple[EventOutputSpec, ...]
    where: str
    target_dynamics: TargetDynamics | None = None


@dataclass(frozen=True)
class CellRef:
    population: str
    index: int
    rest: str


_INDEXED = re.compile(r"(?P<pop>[A-Za-z_][\w]*)\[(?P<index>\d+)\](?:/(?P<rest>.*))?")
_LISTED = re.compile(r"(?P<pop>[A-Za-z_][\w]*)/(?P<index>\d+)/(?P<cell>[A-Za-z_][\w]*)(?:/(?P<rest>.*))?")


def parse_cell_ref(path: str, where: str = "") -> CellRef:
    """``"pop[0]/v"`` or ``"pop/0/cellType/v"`` (a leading ``../`` dropped) -> population, index, rest."""
    text = path.strip()
    while text.startswith("../"):
        text = text[3:]
    match = _INDEXED.fullmatch(text) or _LISTED.fullmatch(text)
    if match is None:
        raise ModelError(f"{where}: cannot read the cell reference {path!r} (expected pop[i]/... or pop/i/cell/...)")
    return CellRef(match["pop"], int(match["index"]), match["rest"] or "")


def _is_simulation(element: etree._Element) -> bool:
    tag = local_name(element)
    return tag == "Simulation" or (tag == "Component" and element.get("type") == "Simulation")


def read_simulation(library: Library) -> SimulationSpec:
    """The simulation the LEMS file's ``<Target>`` names (or its only ``<Simulation>``).

    Raises
    ------
    ModelError
        No simulation, an unknown target or component, a malformed reference.
    UnsupportedError
        A network element nml2lut cannot simulate (spiking projections...).
    """
    root_file = library.files[-1]
    simulations = [(el, str(xml.path)) for xml in library.files for el in xml.root
                   if isinstance(el.tag, str) and _is_simulation(el)]  # fmt: skip
    target = next((el.get("component") for el in root_file.root if local_name(el) == "Target"), None)
    chosen = [s for s in simulations if target is None or s[0].get("id") == target]
    if len(chosen) != 1:
        raise ModelError(f"{root_file.path}: found {len(chosen)} simulations for target {target!r}; expected one")
    element, path = chosen[0]
    where = _where(element, path)
    units = library.units

    def quantity(el, name, dim, where_):
        text = el.get(name)
        if text is None:
            raise ModelError(f"{where_}: missing attribute {name!r}")
        return units.parse(text, dim, where=f"{where_} {name}").value

    length = quantity(element, "length", "time", where)
    step = quantity(element, "step", "time", where)
    if not (length > 0 and step > 0 and length / step < 1e9):
        raise UnitError(f"{where}: length {length} s and step {step} s do not make a simulation")
    target_id = element.get("target")
    found = find_element(library, target_id or "")
    if found is None:
        raise ModelError(f"{where}: no network or component with id {target_id!r}")
    network, network_path = found
    prefix, target_dynamics = "", None
    if local_name(network) != "network":
        # A custom target wrapping a network (a tissue, say): quantities are prefixed by the network id.
        inner = [c for c in network if local_name(c) == "network"]
        if len(inner) != 1:
            raise UnsupportedError(f"target {local_name(network)}",
                                   f"{_where(network, network_path)}: the target is not a network")  # fmt: skip
        target_dynamics = _target_dynamics(library, network, network_path)
        network = inner[0]
        prefix = f"{network.get('id', '')}/"
    temperature = None
    if network.get("temperature") is not None:
        temperature = quantity(network, "temperature", "temperature", _where(network, network_path))
    reader = _NetworkReader(library, network, network_path)
    outputs, events = _outputs(element, path)
    return SimulationSpec(
        id=element.get("id", ""), length=length, step=step, network=network.get("id", ""), prefix=prefix,
        temperature=temperature, populations=reader.populations(), inputs=reader.inputs(),
        connections=reader.connections(), spiking=reader.spiking(), outputs=outputs, event_outputs=events, where=where,
        target_dynamics=target_dynamics,
    )  # fmt: skip


@dataclass(frozen=True)
class TargetDynamics:
    """A custom simulation target's own Dynamics (a tissue whose temperature changes, say).

    Trees over its states and ``t`` only (parameters substituted); no time
    derivatives: the states change by ``OnCondition`` assignments.
    """

    states: tuple[str, ...]
    on_start: dict[str, expr.Node]
    on_conditions: tuple[tuple[expr.Node, dict[str, expr.Node]], ...]
    where: str


def _target_dynamics(library: Library, element: etree._Element, path: str) -> TargetDynamics | None:
    """The Dynamics of a custom target that exposes ``temperature`` (None when it has none)."""
    kind = element.get("type") or local_name(element)
    where = _where(element, path)
    if kind not in library.types:
        return None
    attributes = {k: v for k, v in element.attrib.items() if isinstance(k, str)}
    resolver = library.types.resolve_dynamics(Component(kind, attributes, where), {}, allow_events=True)
    flat = resolver.flat
    if "temperature" not in flat.exposures:
        return None
    if flat.derivatives or flat.selects:
        raise UnsupportedError("target dynamics", f"{where}: {kind!r} integrates its temperature; only "
                                                  "OnStart/OnCondition assignments are supported")  # fmt: skip
    if "temperature" not in flat.states:
        value = resolver.value_of("temperature")
        if not isinstance(value, expr.Num):
            raise UnsupportedError("target dynamics", f"{where}: {kind!r} computes its temperature")
        return TargetDynamics(("temperature",), {"temperature": value}, (), where)

    def close(tree: expr.Node) -> expr.Node:
        names = {n: resolver.value_of(n) for n in expr.free_symbols(tree) if n not in flat.states and n != "t"}
        closed = expr.fold_constants(expr.substitute(tree, names))
        unknown = expr.free_symbols(closed) - set(flat.states) - {"t"}
        if unknown:
            raise ModelError(f"{where}: {kind!r} uses {sorted(unknown)}")
        return closed

    missing = set(flat.states) - set(flat.on_start)
    if missing:
        raise ModelError(f"{where}: {kind!r} gives no initial value for {sorted(missing)}")
    return TargetDynamics(
        tuple(flat.states), {s: close(v) for s, v in flat.on_start.items()},
        tuple((close(test), {s: close(v) for s, v in assign.items()}) for test, assign in flat.on_conditions), where,
    )  # fmt: skip


class _NetworkReader:
    def __init__(self, library: Library, network: etree._Element, path: str):
        self.library = library
        self.network = network
        self.path = path
        self.sizes: dict[str, int] = {}

    def _children(self, *tags: str):
        return [c for c in self.network if local_name(c) in tags]

    def populations(self) -> tuple[PopulationSpec, ...]:
        out = []
        for element in self._children("population"):
            where = _where(element, self.path)
            ident, component = element.get("id"), element.get("component")
            if not ident or not component:
                raise ModelError(f"{where}: a population needs an 'id' and a 'component'")
            instances = [c for c in element if local_name(c) == "instance"]
            if instances:
                ids = sorted(int(c.get("id", "-1")) for c in instances)
                if ids != list(range(len(ids))):
                    raise UnsupportedError("sparse instance ids", f"{where}: instance ids must be 0..n-1")
                size = len(instances)
            else:
                try:
                    size = int(element.get("size", ""))
                except ValueError:
                    raise ModelError(f"{where}: size={element.get('size')!r} is not an integer") from None
            if not 0 < size <= 10_000_000:
                raise ModelError(f"{where}: size {size} is out of range")
            if ident in self.sizes:
                raise ModelError(f"{where}: duplicate population id")
            self.sizes[ident] = size
            out.append(PopulationSpec(ident, component, size, where))
        if not out:
            raise ModelError(f"{_where(self.network, self.path)}: the network has no populations")
        return tuple(out)

    def _check_cell(self, population: str, index: int, where: str) -> tuple[str, int]:
        if population not in self.sizes:
            raise ModelError(f"{where}: no population {population!r}")
        if not 0 <= index < self.sizes[population]:
            raise ModelError(f"{where}: cell {index} is outside population {population!r} of {self.sizes[population]}")
        return population, index

    def _component(self, ident: str, kinds: frozenset[str], what: str, where: str) -> tuple[str, dict[str, float]]:
        found = find_element(self.library, ident)
        if found is None:
            raise ModelError(f"{where}: no {what} with id {ident!r}")
        element, path = found
        kind = element.get("type") if local_name(element) == "Component" else local_name(element)
        if kind not in kinds:
            raise UnsupportedError(kind, f"{_where(element, path)}: {what} of type {kind!r} is not supported "
                                         f"(supported: {', '.join(sorted(kinds))})")  # fmt: skip
        dims = _PARAMETERS[kind]
        values = {}
        for name, dim in dims.items():
            text = element.get(name)
            if text is None:
                raise ModelError(f"{_where(element, path)}: missing attribute {name!r}")
            values[name] = self.library.units.parse(text, dim, where=f"{_where(element, path)} {name}").value
        return kind, values

    def inputs(self) -> tuple[InputSpec, ...]:
        out = []
        for element in self._children("explicitInput"):
            where = _where(element, self.path)
            ref = parse_cell_ref(element.get("target", ""), where)
            population, index = self._check_cell(ref.population, ref.index, where)
            kind, values = self._component(element.get("input", ""), INPUT_TYPES, "input", where)
            out.append(InputSpec(population, index, element.get("input", ""), kind, values, 1.0, where))
        for element in self._children("inputList"):
            where = _where(element, self.path)
            component = element.get("component", "")
            kind, values = self._component(component, INPUT_TYPES, "input", where)
            for item in element:
                tag = local_name(item)
                if tag not in ("input", "inputW"):
                    continue
                item_where = _where(item, self.path)
                # The target names the cell; jLEMS follows it even where the list's
                # population attribute says otherwise.
                ref = parse_cell_ref(item.get("target", ""), item_where)
                population, index = self._check_cell(ref.population, ref.index, item_where)
                weight = _float(item.get("weight", "1"), item_where, "weight")
                out.append(InputSpec(population, index, component, kind, values, weight, item_where))
        return tuple(out)

    def _cell_of(self, item: etree._Element, name: str, population: str | None, where: str) -> tuple[str, int]:
        """``preCell="0"`` (an index into ``population``) or ``preCellId="../pop/0/cell"`` (a path)."""
        text = item.get(name) or item.get(f"{name}Id") or ""
        if text.strip().isdigit() and population:
            return self._check_cell(population, int(text), where)
        ref = parse_cell_ref(text, where)
        return self._check_cell(ref.population, ref.index, where)

    def spiking(self) -> tuple[SpikingConnectionSpec, ...]:
        out = []
        for projection in self._children("projection"):
            where = _where(projection, self.path)
            items = [c for c in projection if local_name(c) in ("connection", "connectionWD")]
            if not items:
                continue
            if not projection.get("id"):
                raise ModelError(f"{where}: a projection needs an id")
            synapse = self._component(projection.get("synapse", ""), SPIKING_TYPES, "synapse", where)
            pre_pop, post_pop = projection.get("presynapticPopulation"), projection.get("postsynapticPopulation")
            for item in items:
                item_where = _where(item, self.path)
                pre = self._cell_of(item, "preCell", pre_pop, item_where)
                post = self._cell_of(item, "postCell", post_pop, item_where)
                weight = _float(item.get("weight", "1"), item_where, "weight")
                delay = self.library.units.parse(item.get("delay", "0ms"), "time", where=f"{item_where} delay").value
                if delay < 0:
                    raise ModelError(f"{item_where}: negative delay")
                out.append(SpikingConnectionSpec(projection.get("id", ""), pre, post, synapse, weight, delay, item_where))
        return tuple(out)

    def connections(self) -> tuple[ConnectionSpec, ...]:
        out = []
        for projection in self._children("electricalProjection"):
            where = _where(projection, self.path)
            pre_pop, post_pop = projection.get("presynapticPopulation"), projection.get("postsynapticPopulation")
            for item in projection:
                if not local_name(item).startswith("electricalConnection"):
                    continue
                item_where = _where(item, self.path)
                pre = self._cell_of(item, "preCell", pre_pop, item_where)
                post = self._cell_of(item, "postCell", post_pop, item_where)
                junction = self._component(item.get("synapse", ""), CONTINUOUS_TYPES, "synapse", item_where)
                weight = _float(item.get("weight", "1"), item_where, "weight")
                # A gap junction acts on both cells, each seeing the other as its peer.
                ident = item.get("synapse", "")
                out.append(ConnectionSpec(projection.get("id", ""), pre, post, junction, junction, weight, item_where,
                                          ident, ident))  # fmt: skip
        for projection in self._children("continuousProjection"):
            where = _where(projection, self.path)
            pre_pop, post_pop = projection.get("presynapticPopulation"), projection.get("postsynapticPopulation")
            for item in projection:
                tag = local_name(item)
                if not tag.startswith("continuousConnection"):
                    continue
                item_where = _where(item, self.path)
                if tag == "continuousConnection":
                    pre = (pre_pop, int(_float(item.get("preCell", ""), item_where, "preCell")))
                    post = (post_pop, int(_float(item.get("postCell", ""), item_where, "postCell")))
                else:
                    pre_ref = parse_cell_ref(item.get("preCell", ""), item_where)
                    post_ref = parse_cell_ref(item.get("postCell", ""), item_where)
                    pre, post = (pre_ref.population, pre_ref.index), (post_ref.population, post_ref.index)
                pre = self._check_cell(*pre, item_where)
                post = self._check_cell(*post, item_where)
                weight = _float(item.get("weight", "1"), item_where, "weight")
                pre_c = self._component(item.get("preComponent", ""), CONTINUOUS_TYPES, "synapse", item_where)
                post_c = self._component(item.get("postComponent", ""), CONTINUOUS_TYPES, "synapse", item_where)
                out.append(ConnectionSpec(projection.get("id", ""), pre, post, pre_c, post_c, weight, item_where,
                                          item.get("preComponent", ""), item.get("postComponent", "")))  # fmt: skip
            if not projection.get("id"):
                raise ModelError(f"{where}: a projection needs an id")
        return tuple(out)


def _float(text: str, where: str, name: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise ModelError(f"{where}: {name}={text!r} is not a number") from None


_PARAMETERS = {
    "pulseGenerator": {"delay": "time", "duration": "time", "amplitude": "current"},
    "sineGenerator": {"delay": "time", "duration": "time", "amplitude": "current", "period": "time", "phase": "none"},
    "rampGenerator": {"delay": "time", "duration": "time", "startAmplitude": "current",
                      "finishAmplitude": "current", "baselineAmplitude": "current"},
    "gradedSynapse": {"conductance": "conductance", "delta": "voltage", "Vth": "voltage", "k": "per_time",
                      "erev": "voltage"},
    "silentSynapse": {},
    "linearGradedSynapse": {"conductance": "conductance"},
    "gapJunction": {"conductance": "conductance"},
    "voltageClamp": {"delay": "time", "duration": "time", "targetVoltage": "voltage",
                     "simpleSeriesResistance": "resistance"},
    "expOneSynapse": {"gbase": "conductance", "erev": "voltage", "tauDecay": "time"},
    "expTwoSynapse": {"gbase": "conductance", "erev": "voltage", "tauRise": "time", "tauDecay": "time"},
    "alphaSynapse": {"gbase": "conductance", "erev": "voltage", "tau": "time"},
}  # fmt: skip


def _outputs(simulation: etree._Element, path: str) -> tuple[tuple[OutputSpec, ...], tuple[EventOutputSpec, ...]]:
    outputs, events = [], []
    for element in simulation:
        tag = local_name(element)
        if tag == "OutputFile":
            columns = tuple((c.get("id", ""), c.get("quantity", "")) for c in element
                            if local_name(c) == "OutputColumn")  # fmt: skip
            outputs.append(OutputSpec(element.get("id", ""), element.get("fileName", ""), columns))
        elif tag == "EventOutputFile":
            selections = tuple((c.get("id", ""), c.get("select", "")) for c in element
                               if local_name(c) == "EventSelection")  # fmt: skip
            events.append(EventOutputSpec(element.get("id", ""), element.get("fileName", ""),
                                          element.get("format", "TIME_ID"), selections))  # fmt: skip
    if not outputs:
        # No OutputFile: record what the Displays plot (as the reference runs did).
        columns = tuple((line.get("id", ""), line.get("quantity", "")) for display in simulation
                        if local_name(display) == "Display" for line in display if local_name(line) == "Line")  # fmt: skip
        if columns:
            outputs.append(OutputSpec("displays", "", columns))
    for output in outputs:
        for _, quantity in output.columns:
            if not quantity:
                raise ModelError(f"{path}: an output column without a quantity in {output.id!r}")
    return tuple(outputs), tuple(events)
