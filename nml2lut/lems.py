"""lems: run a LEMS ``<Simulation>`` of single-compartment NeuroML2 cells in Brian2 (`run_lems`).

parse (`nml2lut.parse.lems`) -> one NeuronGroup per population (`nml2lut.cell`)
with its inputs as functions of ``t`` -> Synapses for continuous connections
-> monitors for the simulation's output columns -> run -> arrays in SI.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace

import numpy as np

from . import expr
from .cell import CellBuildOptions, LoadedCell, build_cell, default_method
from .emit import identifier
from .errors import ModelError, UnsupportedError
from .parse import read_library
from .parse.cells import read_cell
from .parse.channels import Library
from .parse.lems import ConnectionSpec, InputSpec, SimulationSpec, parse_cell_ref, read_simulation
from .stepper import METHOD_NAME

__all__ = ["run_lems", "LemsRun", "TARGETS", "EULER_METHODS", "DEFAULT_LEMS_METHOD", "LEMS_TOLERANCE"]

TARGETS = ("numpy", "cython", "cpp_standalone")
#: Default table tolerance of `run_lems`, tighter than `load_channel`'s 1e-4:
#: a LEMS simulation is run to reproduce a reference, and a network can
#: magnify a table error of 1e-4 into spike times milliseconds apart after
#: seconds (followers that depolarise slowly to threshold).  Single cells
#: hardly notice the cost: the tables stay far smaller than a cache level.
LEMS_TOLERANCE = 1e-6
#: Methods that ask for jLEMS's own scheme: forward Euler, with the channels'
#: rates reading the membrane potential of three steps before (jLEMS hands v
#: down the component tree one level per step) and kinetic schemes stepped by
#: the exact transition matrix, as jLEMS steps them.
EULER_METHODS = ("euler",)
#: `run_lems`'s method when none is given: jLEMS's own scheme, so that a LEMS
#: simulation gives jLEMS's result (the output files diff against jLEMS's).
#: jLEMS's forward Euler with its lags is often not converged at a file's step;
#: ``method=nml2lut.METHOD`` integrates the same model without the lags, by
#: exponential Euler, closer to the converged solution.
DEFAULT_LEMS_METHOD = "euler"
JLEMS_RATE_LAG = 3
#: A pool reads ``iCa`` from the cell, which sums it from its channels after its
#: children (the pool among them) have stepped: the pool steps with the calcium
#: current of the step before; the rates read the pool's concentration of the
#: same step, without lag.  Recorded against jLEMS (PyloricNetwork's LP cell,
#: 10000 steps): caConc, the KCa gate and v then agree to the output's 8 digits.
JLEMS_POOL_CURRENT_LAG = 1


@dataclass
class LemsRun:
    """What `run_lems` built: the groups, monitors and the map from quantities to them."""

    simulation: SimulationSpec
    cells: dict[str, LoadedCell]
    groups: dict = field(default_factory=dict)
    synapses: list = field(default_factory=list)
    monitors: dict = field(default_factory=dict)
    spike_monitors: dict = field(default_factory=dict)
    columns: dict[str, tuple[str, str, int, str]] = field(default_factory=dict)


_EDGE_CHUNK = 1 << 20


def _jlems_edge(time: float, dt: float, steps: int, *, inclusive: bool = True) -> int:
    """The first step (from 0) whose end time, as jLEMS sums it, reaches ``time`` (``> time`` if not inclusive).

    jLEMS advances step n with ``t`` = dt added n + 1 times, which drifts from
    (n + 1)*dt by rounding: an input edge on a step boundary can fall a step
    either side of where ``(n + 1)*dt`` puts it.  ``steps`` if not reached within
    the run's ``steps`` steps.
    """
    count = min(steps, int(time / dt * (1 + 1e-9)) + 3) if time >= 0 else 0
    side = "left" if inclusive else "right"
    total, done = 0.0, 0
    while done < count:  # in chunks: memory stays bounded however long the run
        chunk = np.full(min(_EDGE_CHUNK, count - done), dt)
        chunk[0] += total
        ends = np.cumsum(chunk)  # sequential, so the same repeated addition as jLEMS's loop
        found = int(np.searchsorted(ends, time, side=side))
        if found < ends.size:
            return done + found
        total, done = float(ends[-1]), done + ends.size
    return count


def _input_expression(spec: InputSpec, dt: float | None = None, steps: int = 0) -> str:
    """The input's current (amp) at Brian2 time ``t``, as the core input types define it.

    With ``dt`` (s), the on and off edges fall on the steps where jLEMS's summed
    time crosses them (`_jlems_edge`; ``steps`` is the run's length in steps).
    """
    p = {k: repr(float(v)) for k, v in spec.parameters.items()}
    start, stop = spec.parameters["delay"], spec.parameters["delay"] + spec.parameters["duration"]
    # jLEMS sets an input's current by OnConditions on the time at the end of a step,
    # so the current is on during the step that ends at `delay`: hence t + dt.
    inside = f"int(t + dt >= {start!r}*second and t + dt < {stop!r}*second)"
    if dt is not None:
        step = "timestep(t, dt)"
        inside = f"int({step} >= {_jlems_edge(start, dt, steps)} and {step} < {_jlems_edge(stop, dt, steps)})"
    if spec.kind == "pulseGenerator":
        return f"{p['amplitude']}*amp*{inside}"
    if spec.kind == "sineGenerator":
        return (f"{p['amplitude']}*amp*{inside}*sin({p['phase']} + 2*3.14159265*((t + dt)/second - {p['delay']})"
                f"/{p['period']})")  # fmt: skip
    if spec.kind == "voltageClamp":
        # Active from delay, off after delay + duration (strictly later), as the core type's conditions say.
        clamp = f"int(t + dt >= {start!r}*second and t + dt <= {stop!r}*second)"
        if dt is not None:
            step = "timestep(t, dt)"
            off = _jlems_edge(stop, dt, steps, inclusive=False)
            clamp = f"int({step} >= {_jlems_edge(start, dt, steps)} and {step} < {off})"
        return f"{clamp}*({p['targetVoltage']}*volt - v)/({p['simpleSeriesResistance']}*ohm)"
    if spec.kind == "rampGenerator":
        ramp = (f"({p['startAmplitude']} + ({p['finishAmplitude']} - {p['startAmplitude']})*((t + dt)/second - {p['delay']})"
                f"/{p['duration']})")  # fmt: skip
        return f"({inside}*{ramp} + (1 - {inside})*{p['baselineAmplitude']})*amp"
    raise UnsupportedError(spec.kind, f"{spec.where}: input type {spec.kind!r}")


def _synapse_model(kind: str, values: dict[str, float], target: str, peer: str = "v_pre",
                   record: bool = False) -> tuple[str, str | None, str | None]:  # fmt: skip
    """Brian2 Synapses model, after-step update and before-step update of a continuous synapse.

    ``v_pre`` is the peer; ``peer`` is the peer voltage the graded synapse's
    state reads (`PEER_VOLTAGE` in jLEMS's scheme).  With ``record``, the
    updates also copy the synapse's `SYNAPSE_QUANTITIES` into parameters (a
    StateMonitor cannot read a Synapses subexpression of the cells'
    variables): the current before the step, from the state the step starts
    from, as jLEMS computes and records it; ``inf`` and ``tau`` after it.
    """
    model, update = _synapse_dynamics(kind, values, target, peer)
    if not record:
        return model, update, None
    copies = _recorded_copies(kind)
    units = dict(SYNAPSE_QUANTITIES[kind].values())
    model += "".join(f"{name} : {units[name]}\n" for name in copies)
    before = [f"{name} = {source}" for name, source in copies.items() if name == CURRENT_COPY]
    after = [f"{name} = {source}" for name, source in copies.items() if name != CURRENT_COPY]
    return model, "\n".join(([update] if update else []) + after) or None, "\n".join(before) or None


def _recorded_copies(kind: str) -> dict[str, str]:
    """The parameters that hold a continuous synapse's recorded quantities, and what each copies."""
    return {name: name.removesuffix(_COPY_SUFFIX) for name, _ in SYNAPSE_QUANTITIES[kind].values()
            if name.endswith(_COPY_SUFFIX)}  # fmt: skip


def _synapse_dynamics(kind: str, values: dict[str, float], target: str, peer: str) -> tuple[str, str | None]:
    if kind == "gradedSynapse":
        g, delta, vth, k, erev = (repr(values[n]) for n in ("conductance", "delta", "Vth", "k", "erev"))
        model = f"""
        s_inf = 1/(1 + exp(({vth} - {peer}/volt)/{delta})) : 1
        tau_syn = (1 - s_inf)/{k}*second : second
        moving = int(1 - s_inf > 1e-4) : 1
        ds/dt = moving*(s_inf - s)*{k}/(1 - s_inf + (1 - moving))/second : 1 (clock-driven)
        i_syn = w*{g}*siemens*s*({erev}*volt - v_post) : amp
        {target}_post = i_syn : amp (summed)
        w : 1 (constant)
        """
        if "peer_later" in peer:
            model += "peer_later : 1 (constant)\n"
        return model, "s = s + int(1 - s_inf < 1e-4)*(s_inf - s)"
    if kind in ("linearGradedSynapse", "gapJunction"):
        g = repr(values["conductance"])
        return f"""
        i_syn = w*{g}*siemens*(v_pre - v_post) : amp
        {target}_post = i_syn : amp (summed)
        w : 1 (constant)
        """, None  # fmt: skip
    raise UnsupportedError(kind, f"continuous synapse type {kind!r}")


#: The copy of a synapse's current, made before the step (`_synapse_model`).
CURRENT_COPY = "i_syn_rec"
_COPY_SUFFIX = "_rec"  # a parameter the updates set from the name without it (`_recorded_copies`)
#: What a continuous synapse on a cell exposes, as ``<population>[<i>]/<synapse id>/<name>``
#: (jLEMS's path), by synapse type: LEMS name -> (Brian2 variable of its Synapses, unit).
SYNAPSE_QUANTITIES = {
    "gradedSynapse": {"s": ("s", "1"), "inf": ("s_inf_rec", "1"), "tau": ("tau_syn_rec", "second"),
                      "i": ("i_syn_rec", "amp")},
    "linearGradedSynapse": {"i": ("i_syn_rec", "amp")},
    "gapJunction": {"i": ("i_syn_rec", "amp")},
}


#: In jLEMS's scheme: the graded synapse reads its peer's ``v`` (the silent synapse's copy
#: of the pre cell's ``v``, taken when that cell last stepped) before the post cell steps.
#: Brian2 steps the synapses after the cells, where ``v_lag1`` holds the pre cell's ``v``
#: at the step's start; a pre cell that jLEMS steps after the post cell (later population,
#: or later in the same one) was last stepped a step before: ``v_lag2``.
PEER_VOLTAGE = "(v_lag1_pre*(1 - peer_later) + v_lag2_pre*peer_later)"


def _peer_later(populations: list[str], source: tuple[str, int], dest: tuple[str, int]) -> bool:
    """Whether jLEMS steps the cell ``source`` after the cell ``dest`` (populations in order, then index)."""
    return (populations.index(source[0]), source[1]) > (populations.index(dest[0]), dest[1])


def _spiking_model(kind: str, values: dict[str, float], target: str) -> tuple[str, str]:
    """Brian2 Synapses model and on_pre code of a chemical synapse (core types: conductance in siemens)."""
    gbase, erev = repr(values["gbase"]), repr(values["erev"])
    current = f"{target}_post = g*({erev}*volt - v_post) : amp (summed)\nw : 1 (constant)"
    if kind == "expOneSynapse":
        return f"dg/dt = -g/({values['tauDecay']!r}*second) : siemens (clock-driven)\n{current}", f"g += w*{gbase}*siemens"
    if kind == "expTwoSynapse":
        rise, decay = values["tauRise"], values["tauDecay"]
        if not 0 < rise < decay:
            raise ModelError(f"expTwoSynapse needs 0 < tauRise < tauDecay, got {rise} s and {decay} s")
        peak = math.log(decay / rise) * rise * decay / (decay - rise)
        factor = 1 / (math.exp(-peak / decay) - math.exp(-peak / rise))
        model = (f"dA/dt = -A/({rise!r}*second) : 1 (clock-driven)\ndB/dt = -B/({decay!r}*second) : 1 (clock-driven)\n"
                 f"g = {gbase}*siemens*(B - A) : siemens\n{current}")  # fmt: skip
        return model, f"A += w*{factor!r}\nB += w*{factor!r}"
    if kind == "alphaSynapse":
        tau = repr(values["tau"])
        model = (f"dA/dt = -A/({tau}*second) : siemens (clock-driven)\n"
                 f"dg/dt = (2.7182818284590451*A - g)/({tau}*second) : siemens (clock-driven)\n{current}")  # fmt: skip
        return model, f"A += w*{gbase}*siemens"
    raise UnsupportedError(kind, f"synapse type {kind!r}")


class _Builder:
    def __init__(self, library: Library, simulation: SimulationSpec, *, mode, method, tolerance, v_range, steps=0):
        self.library = library
        self.sim = simulation
        self.mode = mode
        self.method = method
        self.tolerance = tolerance
        self.v_range = v_range
        self.rate_lag = JLEMS_RATE_LAG if method in EULER_METHODS else 0
        self.steps = steps
        self.extra_lines: dict[str, list[str]] = {p.id: [] for p in simulation.populations}
        self.extra_currents: dict[str, list[str]] = {p.id: [] for p in simulation.populations}
        self.input_weights: dict[tuple[str, str], dict[int, float]] = {}
        self.synapse_specs: list[tuple[ConnectionSpec, str, str, tuple]] = []
        self.synapse_sites: list[tuple[str, int, str]] = []  # (cell population, index, component id) per spec
        self.spiking_specs: dict[str, tuple[str, list]] = {}

    def plan(self) -> None:
        """Decide the extra currents of each population before its equations are built."""
        for spec in self.sim.inputs:
            name = identifier(f"I_in_{spec.component}", what="input id")
            key = (spec.population, name)
            if key not in self.input_weights:
                self.input_weights[key] = {}
                jlems = (self.sim.step, self.steps) if self.rate_lag else ()
                self.extra_lines[spec.population] += [f"{name} = w_{name}*({_input_expression(spec, *jlems)}) : amp",
                                                      f"w_{name} : 1 (constant)"]  # fmt: skip
                self.extra_currents[spec.population].append(name)
            weights = self.input_weights[key]
            weights[spec.index] = weights.get(spec.index, 0.0) + spec.weight
        for number, connection in enumerate(self.sim.connections):
            base = identifier(f"{connection.projection}_{number}", what="projection id")
            for side, (kind, values), source, dest in (
                ("post", connection.post_component, connection.pre, connection.post),
                ("pre", connection.pre_component, connection.post, connection.pre),
            ):
                if kind == "silentSynapse":
                    continue
                target = f"Isyn_{side}_{base}"  # Brian2 reserves names ending in _pre/_post
                self.extra_lines[dest[0]].append(f"{target} : amp")
                self.extra_currents[dest[0]].append(target)
                self.synapse_specs.append((connection, target, kind, (values, source, dest)))
                ident = connection.post_component_id if side == "post" else connection.pre_component_id
                self.synapse_sites.append((dest[0], dest[1], ident))

        for connection in self.sim.spiking:
            target = identifier(f"Isyn_ev_{connection.projection}", what="projection id")
            if target not in self.spiking_specs:
                self.extra_lines[connection.post[0]].append(f"{target} : amp")
                self.extra_currents[connection.post[0]].append(target)
                self.spiking_specs[target] = (connection.synapse, [])
            if self.spiking_specs[target][0] != connection.synapse:
                raise ModelError(f"{connection.where}: one projection with two synapse types")
            self.spiking_specs[target][1].append(connection)

    def cells(self) -> dict[str, LoadedCell]:
        out = {}
        for population in self.sim.populations:
            spec = read_cell(self.library, population.component)
            options = CellBuildOptions(
                temperature=self.sim.temperature, mode=self.mode, v_range=self.v_range, tolerance=self.tolerance,
                dt=_seconds(self.sim.step), rate_lag=self.rate_lag,
                pool_current_lag=JLEMS_POOL_CURRENT_LAG if self.rate_lag else 0,
                extra_currents=tuple(self.extra_currents[population.id]),
            )  # fmt: skip
            if self.v_range is None:
                options = dc_replace(options, v_range=CellBuildOptions.v_range)
            out[population.id] = build_cell(self.library, spec, options)
        return out


def _seconds(value: float):
    from brian2 import second

    return value * second


@dataclass(frozen=True)
class _Column:
    """Where an output quantity lives: a cell's variable, a continuous synapse's, or the temperature."""

    population: str  # "" for the temperature
    name: str  # the Brian2 variable
    index: int
    unit: str
    synapse: int | None = None  # which of the builder's continuous synapses, if one's


def _resolve_column(run: LemsRun, builder: _Builder, quantity: str) -> _Column:
    """Where an output quantity is recorded; raises before any Brian2 object exists."""
    sim = run.simulation
    text = quantity
    if sim.prefix and text.startswith(sim.prefix):
        text = text[len(sim.prefix):]
    if text == "temperature":
        if sim.temperature is None:
            raise ModelError(f"{sim.where}: the network has no temperature to record")
        return _Column("", "temperature", 0, "kelvin")
    ref = parse_cell_ref(text, sim.where)
    if ref.population not in run.cells:
        raise ModelError(f"{sim.where}: output {quantity!r}: no population {ref.population!r}")
    size = next(p.size for p in sim.populations if p.id == ref.population)
    if not 0 <= ref.index < size:
        raise ModelError(f"{sim.where}: output {quantity!r}: cell {ref.index} outside the population")
    component, _, rest = ref.rest.partition("/")
    site = (ref.population, ref.index, component)
    numbers = [n for n, other in enumerate(builder.synapse_sites) if other == site]
    if not numbers:
        name, unit = run.cells[ref.population].variable(ref.rest)
        return _Column(ref.population, name, ref.index, unit)
    if len(numbers) > 1:
        raise UnsupportedError("recording one of several synapses",
                               f"{sim.where}: output {quantity!r}: {len(numbers)} synapses {component!r} act on "
                               f"{ref.population}[{ref.index}]; which one is meant is ambiguous")  # fmt: skip
    kind = builder.synapse_specs[numbers[0]][2]
    exposed = SYNAPSE_QUANTITIES.get(kind, {})
    if rest not in exposed:
        raise ModelError(f"{sim.where}: output {quantity!r}: the {kind} {component!r} has no quantity {rest!r} "
                         f"(it has: {', '.join(sorted(exposed)) or 'none'})")  # fmt: skip
    name, unit = exposed[rest]
    return _Column("", name, 0, unit, synapse=numbers[0])  # one connection per Synapses object: synapse 0


def _build(run: LemsRun, builder: _Builder, method) -> list:
    from brian2 import Equations, NeuronGroup, SpikeMonitor, StateMonitor, Synapses, second

    sim = run.simulation
    dt = _seconds(sim.step)
    columns = {quantity: _resolve_column(run, builder, quantity) for output in sim.outputs
               for _, quantity in output.columns}  # fmt: skip
    recorded_synapses = {column.synapse for column in columns.values() if column.synapse is not None}
    objects = []
    for population in sim.populations:
        cell = run.cells[population.id]
        equations = cell.equations + Equations("\n".join(builder.extra_lines[population.id]))
        group = NeuronGroup(
            population.size, equations, threshold=cell.threshold, refractory=cell.threshold, method=method, dt=dt,
            namespace=dict(cell.namespace), name=f"pop_{identifier(population.id, what='population id')}",
        )  # fmt: skip
        cell.init(group, kinetic_start="first")
        for (pop, name), weights in builder.input_weights.items():
            if pop == population.id:
                values = np.zeros(population.size)
                for index, weight in weights.items():
                    values[index] = weight
                setattr(group, f"w_{name}", values)
        run.groups[population.id] = group
        objects.append(group)
    for number, (connection, target, kind, (values, source, dest)) in enumerate(builder.synapse_specs):
        jlems = kind == "gradedSynapse" and builder.rate_lag
        record = number in recorded_synapses
        model, update, before = _synapse_model(kind, values, target, PEER_VOLTAGE if jlems else "v_pre", record)
        # Forward Euler, as jLEMS: the graded synapse's rate switches off where it saturates,
        # and exponential Euler would divide by that zero rate.
        synapses = Synapses(run.groups[source[0]], run.groups[dest[0]], model=model, method="euler", dt=dt,
                            name=f"syn_{number}_{target.lower()}")  # fmt: skip
        synapses.connect(i=source[1], j=dest[1])
        synapses.w = connection.weight
        if jlems:
            synapses.peer_later = _peer_later([p.id for p in sim.populations], source, dest)
        if update is not None:
            synapses.run_regularly(update, when="after_groups")
        if before is not None:
            synapses.run_regularly(before, when="before_groups")
        if record:  # the copies start from the initial state, as jLEMS's first output row does
            for name, source in _recorded_copies(kind).items():
                setattr(synapses, name, source)
        run.synapses.append(synapses)
        objects.append(synapses)
    for target, ((kind, values), connections) in builder.spiking_specs.items():
        model, on_pre = _spiking_model(kind, values, target)
        first = connections[0]
        synapses = Synapses(run.groups[first.pre[0]], run.groups[first.post[0]], model=model, on_pre=on_pre,
                            method=method, dt=dt, name=f"syn_{target.lower()}")  # fmt: skip
        synapses.connect(i=np.array([c.pre[1] for c in connections]), j=np.array([c.post[1] for c in connections]))
        synapses.w = np.array([c.weight for c in connections])
        synapses.delay = np.array([c.delay for c in connections]) * second
        run.synapses.append(synapses)
        objects.append(synapses)
    recorded: dict[str, dict[str, set[int]]] = {}
    continuous = run.synapses[: len(builder.synapse_specs)]  # in the builder's order
    sources = {**run.groups, **{synapses.name: synapses for synapses in continuous}}
    for quantity, column in columns.items():
        population = continuous[column.synapse].name if column.synapse is not None else column.population
        run.columns[quantity] = (population, column.name, column.index, column.unit)
        if population:
            recorded.setdefault(population, {}).setdefault(column.name, set()).add(column.index)
    for population, variables in recorded.items():
        indices = sorted(set().union(*variables.values()))
        monitor = StateMonitor(sources[population], sorted(variables), record=indices, dt=dt)
        run.monitors[population] = (monitor, indices)
        objects.append(monitor)
    for event_output in sim.event_outputs:
        for _, select in event_output.selections:
            ref = parse_cell_ref(select, sim.where)
            if ref.population not in run.groups:
                raise ModelError(f"{sim.where}: event selection {select!r}: no population {ref.population!r}")
            if ref.population not in run.spike_monitors:
                monitor = SpikeMonitor(run.groups[ref.population])
                run.spike_monitors[ref.population] = monitor
                objects.append(monitor)
    return objects


def run_lems(
    path: str | os.PathLike,
    *,
    mode: str = "lut",
    target: str = "numpy",
    method=None,
    tolerance: float = LEMS_TOLERANCE,
    v_range: tuple[float, float] | None = None,
    build_dir: str | os.PathLike | None = None,
    length: float | None = None,
    step: float | None = None,
    return_run: bool = False,
):
    """Run a LEMS simulation of single-compartment NeuroML2 cells in Brian2.

    Parameters
    ----------
    path : path-like
        A LEMS file with a ``<Simulation>`` (the one its ``<Target>`` names);
        its network may be a ``network`` or ``networkWithTemperature`` of
        populations of ``<cell>``/``<pointCellCondBased>`` cells, fed by
        ``pulseGenerator``, ``sineGenerator``, ``rampGenerator`` or
        ``voltageClamp`` inputs (``explicitInput``, ``inputList``), coupled by
        continuous projections (graded, linear graded and silent synapses),
        electrical projections (gap junctions) and chemical projections
        (``expOneSynapse``, ``expTwoSynapse``, ``alphaSynapse``; the pre cell's
        spikes, weights, delays).
    mode : {"lut", "exact"}
        Channel tables or exact expressions.
    target : {"numpy", "cython", "cpp_standalone"}
        Brian2's code-generation target (cpp_standalone builds in a
        temporary directory, or ``build_dir``).
    method : str, optional
        ``"euler"`` (the default, `DEFAULT_LEMS_METHOD`) is jLEMS's own scheme
        at the simulation's step, lags included, so the result reproduces
        jLEMS's.  `nml2lut.METHOD` integrates without jLEMS's lags by
        nml2lut's exponential Euler (falling back on forward Euler for
        equations it cannot integrate): closer to the converged solution,
        further from jLEMS where jLEMS is not converged at its step.  Any
        other Brian2 method name is passed on as it is.
    tolerance : float
        Bound on the tables' interpolation error, as in `load_channel`
        (default `LEMS_TOLERANCE`, 1e-6; 2-D tables stop at their size limit,
        `nml2lut.tables2d.MAX_VALUES`, with a ``GridWarning``).
    v_range : (float, float), optional
        The tables' voltage range (V; default -150 to +80 mV for cells).
    length : float, optional
        Simulate this long (s) instead of the simulation's own length.
    step : float, optional
        Integrate with this step (s) instead of the simulation's own, e.g. to
        see how far a result is from its converged value; outputs are then
        sampled at every such step.
    return_run : bool
        Also return the `LemsRun` (groups, monitors).

    Returns
    -------
    dict of str to numpy.ndarray
        ``"t"`` (s) and one array per output quantity, keyed as written in
        the simulation's ``OutputColumn``s (or ``Display`` lines when it has
        no ``OutputFile``), sampled at every step from 0 to the length
        itself (steps + 1 samples, as jLEMS writes them), in SI units; for
        each ``EventOutputFile`` selection, ``"spikes:<select>"`` holds spike
        times (s): the first sample past the threshold, as jLEMS writes them.

    Raises
    ------
    Nml2LutError
        A subclass naming the file, line and element of what is wrong or unsupported.
    """
    if target not in TARGETS:
        raise ModelError(f"target must be one of {TARGETS}, got {target!r}")
    library = read_library(path)
    simulation = read_simulation(library)
    if step is not None:
        try:
            seconds = float(step)
        except (TypeError, ValueError):
            seconds = math.nan
        if not (math.isfinite(seconds) and seconds > 0):
            raise ModelError(f"step must be a positive number of seconds, got {step!r}")
        simulation = dc_replace(simulation, step=seconds)
    steps = int(round((simulation.length if length is None else length) / simulation.step))
    if steps < 1:
        raise ModelError(f"{simulation.where}: length {length} s is shorter than one step")
    segments = temperature_segments(simulation, steps)
    if len(segments) > 1 and target == "cpp_standalone":
        raise UnsupportedError("time-varying temperature in cpp_standalone",
                               f"{simulation.where}: the temperature changes during the run; use numpy or cython")  # fmt: skip
    method = DEFAULT_LEMS_METHOD if method is None else method
    chosen = default_method() if method == METHOD_NAME else method
    parts, run = [], None
    for first, stop, temperature in segments:
        # Channels bind the temperature when loaded: each stretch of constant temperature
        # gets its own model, started from the state the previous one ended in.
        segment = simulation if temperature is None else dc_replace(simulation, temperature=temperature)
        builder = _Builder(library, segment, mode=mode, method=method, tolerance=tolerance, v_range=v_range,
                           steps=steps)  # fmt: skip
        builder.plan()
        current = LemsRun(segment, builder.cells())
        # One step more at the end: the monitors then also sample the state at the full length, as jLEMS does.
        parts.append(_execute(current, builder, chosen, target, build_dir, first, stop + (stop == steps), run))
        run = current
    results = _concatenate(parts)
    end = steps * simulation.step
    for key, values in results.items():
        if key.startswith("spikes:"):  # not the extra step's
            results[key] = values[values < end + 0.5 * simulation.step]
    return (results, run) if return_run else results


def temperature_segments(simulation: SimulationSpec, steps: int) -> list[tuple[int, int, float | None]]:
    """Stretches ``[first, stop)`` of steps with one temperature (K), as a custom target's Dynamics set it.

    jLEMS evaluates the target's OnConditions at the end of each step, on its
    accumulated time; the temperature they set holds from the next step on.
    """
    dynamics = simulation.target_dynamics
    if dynamics is None:
        return [(0, steps, simulation.temperature)]
    state = {name: float(expr.evaluate(tree, {})) for name, tree in dynamics.on_start.items()}
    values = np.empty(steps)
    t = 0.0
    for n in range(steps):
        values[n] = state["temperature"]
        t += simulation.step
        for test, assignments in dynamics.on_conditions:
            if expr.evaluate(test, {**state, "t": t}):
                state.update({k: float(expr.evaluate(v, {**state, "t": t})) for k, v in assignments.items()})
    if not np.all(values > 0):
        raise ModelError(f"{dynamics.where}: the temperature drops to {values.min()} K")
    edges = [0, *(np.flatnonzero(np.diff(values)) + 1).tolist(), steps]
    return [(a, b, float(values[a])) for a, b in zip(edges[:-1], edges[1:])]


def _concatenate(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def _copy_state(previous: LemsRun, current: LemsRun) -> None:
    """Carry every per-neuron and per-synapse state over from the previous stretch's objects."""
    from brian2.core.variables import ArrayVariable

    pairs = [(previous.groups[k], current.groups[k]) for k in current.groups]
    pairs += list(zip(previous.synapses, current.synapses))
    for old, new in pairs:
        for name, variable in old.variables.items():
            target = new.variables.get(name)
            if (isinstance(variable, ArrayVariable) and isinstance(target, ArrayVariable) and name not in ("t", "dt")
                    and not target.read_only and not name.startswith("_") and variable.size == target.size):  # fmt: skip
                target.set_value(variable.get_value())


def _execute(run: LemsRun, builder: _Builder, method, target: str, build_dir, first: int, stop: int,
             previous: LemsRun | None) -> dict[str, np.ndarray]:  # fmt: skip
    import brian2

    sim = run.simulation
    previous_target = brian2.prefs.codegen.target
    standalone = target == "cpp_standalone"
    scratch = None
    if standalone:
        scratch = tempfile.TemporaryDirectory(prefix="nml2lut_lems_") if build_dir is None else None
        directory = str(build_dir) if build_dir is not None else scratch.name
        brian2.set_device("cpp_standalone", directory=directory, build_on_run=False)
    else:
        brian2.prefs.codegen.target = target
    try:
        objects = _build(run, builder, method)
        network = brian2.Network(*objects)
        if previous is not None:
            _copy_state(previous, run)
            network.t_ = first * sim.step
        network.run((stop - first) * sim.step * brian2.second, namespace={})
        if standalone:
            brian2.device.build(directory=directory, compile=True, run=True)
        return _collect(run, stop - first)
    finally:
        if standalone:
            brian2.device.reinit()
            brian2.device.activate()
            brian2.set_device("runtime")
            if scratch is not None:
                scratch.cleanup()
        brian2.prefs.codegen.target = previous_target


def _collect(run: LemsRun, steps: int) -> dict[str, np.ndarray]:
    from brian2 import second

    sim = run.simulation
    results: dict[str, np.ndarray] = {}
    time = None
    for population, (monitor, indices) in run.monitors.items():
        time = np.asarray(monitor.t / second)
        for quantity, (pop, name, index, unit) in run.columns.items():
            if pop != population:
                continue
            # Brian2 keeps values in SI base units: the plain array is the SI value.
            results[quantity] = np.asarray(getattr(monitor, name)[indices.index(index)], dtype=float)
    if time is None:
        time = np.arange(steps) * sim.step
    results = {"t": time, **results}
    for quantity, (pop, name, index, unit) in run.columns.items():
        if not pop:
            results[quantity] = np.full(time.shape, sim.temperature)
    for event_output in sim.event_outputs:
        for _, select in event_output.selections:
            ref = parse_cell_ref(select, sim.where)
            monitor = run.spike_monitors[ref.population]
            # Brian2 stamps a spike with the start of the step whose update crossed the threshold;
            # jLEMS (and the traces) with its end, the first sample past the threshold.
            times = np.asarray(monitor.t / second) + sim.step
            results[f"spikes:{select}"] = times[np.asarray(monitor.i) == ref.index]
    return results
