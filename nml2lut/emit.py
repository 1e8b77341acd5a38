"""emit: a bound channel (and its tables) -> Brian2 equations, namespace and initial values.

Pure: model in, Brian2 objects out.  Names are built only from identifiers
validated here, and numbers only from Python floats, so no text from a file
ever reaches generated code unchecked.
"""

from __future__ import annotations

import hashlib
import keyword
import re
from dataclasses import dataclass, field

import numpy as np
from brian2 import Equations, Function

from . import expr
from .errors import ModelError
from .lookup import (
    EXPREL_FUNCTION_NAME,
    WHERE_FUNCTION_NAME,
    LookupTable,
    make_divide_function,
    make_exprel_function,
    make_lookup_function,
    make_lookup_function_2d,
    make_where_function,
)
from .model import Channel, Gate
from .tables import Tables
from .tables2d import Tables2D

__all__ = ["BrianCode", "identifier", "to_brian2", "curve_names", "gate_steps"]

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# Names Brian2 gives a meaning of its own.
_RESERVED = {"t", "dt", "i", "j", "N", "xi", "lastspike", "not_refractory", "v", "e", "pi", "inf", "nan"}


def identifier(text: str, *, what: str = "name") -> str:
    """``text`` made a valid Brian2/C identifier (non-alphanumerics become ``_``).

    Raises
    ------
    ModelError
        Nothing usable remains (e.g. an empty id).
    """
    # Runs of underscores are collapsed: C++ reserves names containing "__".
    cleaned = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]", "_", text)).strip("_")
    if cleaned and not cleaned[0].isalpha():
        cleaned = f"x{cleaned}"
    if not _IDENTIFIER.fullmatch(cleaned or "") or keyword.iskeyword(cleaned):
        raise ModelError(f"cannot make a Brian2 identifier of {what} {text!r}")
    return cleaned


def curve_names(gate: Gate) -> list[tuple[str, str]]:
    """(curve, quantity) pairs of a gate, ``curve`` being ``"m"`` or ``"q/fast"``."""
    pairs = []
    for key in gate.curves():
        sub, _, quantity = key.rpartition("/")
        pairs.append((f"{gate.id}/{sub}" if sub else gate.id, quantity))
    return pairs


@dataclass
class BrianCode:
    """What a channel contributes to a NeuronGroup.

    Attributes
    ----------
    equations : brian2.Equations
    namespace : dict
        External names the equations use (lookup Functions and helpers).
    initial : dict of str to str
        State variable -> expression of ``v`` giving its steady state.
    names : dict of str to str
        Curve key (``"m.inf"``) -> the subexpression holding it.
    updates : list of str
        Abstract code run once per time step before integration (the
        tabulated one-step update of kinetic schemes); empty for most channels.
    """

    equations: Equations
    namespace: dict = field(default_factory=dict)
    initial: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    updates: list[str] = field(default_factory=list)


def gate_steps(tables: Tables) -> tuple[tuple[int, int], ...]:
    """(inf column, tau column) of every curve with both in ``tables``: the gates a step table serves."""
    pairs = []
    for key in tables.names:
        if key.endswith("/tau") and f"{key[:-3]}inf" in tables.names:
            pairs.append((tables.column(f"{key[:-3]}inf"), tables.column(key)))
    return tuple(pairs)


def _table_function(tables: Tables, suffix: str, steps: tuple[tuple[int, int], ...] = ()) -> tuple[str, Function]:
    digest = hashlib.sha256(tables.values.tobytes())
    digest.update(tables.slopes.tobytes())
    digest.update(np.array([tables.grid.v_min, tables.grid.v_max]).tobytes())
    digest.update(np.array(steps, dtype=np.int64).tobytes())
    name = f"lut_{suffix}_{digest.hexdigest()[:10]}"
    table = LookupTable(tables.values, tables.grid.v_min, tables.grid.v_max, tables.slopes)
    return name, make_lookup_function(table, name, steps=steps)


def _table_function_2d(tables: Tables2D, suffix: str) -> tuple[str, Function]:
    table = tables.table
    digest = hashlib.sha256(table.values.tobytes())
    digest.update(np.array([table.x_min, table.x_max, table.y_min, table.y_max]).tobytes())
    name = f"lut2_{suffix}_{digest.hexdigest()[:10]}"
    return name, make_lookup_function_2d(table, name)


class _Emitter:
    def __init__(self, channel: Channel, tables: Tables | None, suffix: str, tables2d: Tables2D | None, conc: str,
                 step_dt: float | None = None):  # fmt: skip
        self.step_dt = step_dt
        self.channel = channel
        self.tables = tables
        self.tables2d = tables2d
        self.suffix = suffix
        self.conc = conc
        self.lines: list[str] = []
        self.code = BrianCode(Equations(""))
        self.function_name = self.function_name_2d = ""
        if tables is not None and tables.names:
            # gating="ode": the table also serves the tabulated exponential-Euler
            # step of its gates to nml2lut's state updater (nml2lut.stepper)
            steps = gate_steps(tables) if step_dt is None else ()
            self.function_name, function = _table_function(tables, suffix, steps)
            self.code.namespace[self.function_name] = function
        if tables2d is not None and tables2d.names:
            self.function_name_2d, function = _table_function_2d(tables2d, suffix)
            self.code.namespace[self.function_name_2d] = function

    def name(self, *parts: str) -> str:
        return "_".join((*parts, self.suffix))

    def tabulated(self, key: str) -> bool:
        return self.tables is not None and key in self.tables.names

    def curve(self, key: str, tree: expr.Node, symbols: dict[str, str]) -> str:
        """The right-hand side giving curve ``key`` (``"m/inf"``) in its SI unit, as a number."""
        if self.tabulated(key):
            return f"{self.function_name}(v, {self.tables.column(key)})"
        if self.tables2d is not None and key in self.tables2d.names:
            return f"{self.function_name_2d}(v, {self.conc}, {self.tables2d.column(key)})"
        if tree is None:
            raise ModelError(f"{self.channel.where}: no table and no expression for {key!r}")
        nodes = list(expr.walk(tree))
        if any(isinstance(n, expr.Cond) for n in nodes):
            self.code.namespace[WHERE_FUNCTION_NAME] = make_where_function()
            self.code.namespace[expr.DIVIDE_FUNCTION_NAME] = make_divide_function()
        if any(isinstance(n, expr.Call) and n.func == "exprel" for n in nodes):
            self.code.namespace[EXPREL_FUNCTION_NAME] = make_exprel_function()
        return expr.to_brian2(tree, {"v": "(v/volt)", "caConc": f"({self.conc}/mmolar)", **symbols})

    def dynamic(self, state: str, prefix: str, key: str, inf: expr.Node, tau: expr.Node, symbols) -> None:
        inf_name, tau_name = f"{prefix}_inf_{self.suffix}", f"{prefix}_tau_{self.suffix}"
        self.code.initial[state] = inf_name
        self.code.names[f"{key}.inf"] = inf_name
        self.lines.append(f"{inf_name} = {self.curve(f'{key}/inf', inf, symbols)} : 1")
        if self.step_dt is not None:
            # The exact exponential step x += (inf - x)*(1 - exp(-dt/tau)) with the factor
            # tabulated for the time step: no exp at run time.  The gate is a parameter
            # stepped by the channel's update (installed by init), beside the integrators.
            # The currents read the value from the start of the step (`state`), as
            # exponential Euler's coupled update does; `next_state` is stepped with
            # the voltage at the start of the step and becomes `state` at the next one.
            rate_name = f"{prefix}_k_{self.suffix}"
            following = f"{prefix}_next_{self.suffix}"
            self.lines += [
                f"{state} : 1",
                f"{following} : 1",
                f"{rate_name} = {self.curve(f'{key}/k', None, symbols)}/second : 1/second",
            ]
            self.code.updates += [
                f"{state} = {following}",
                f"{following} = {state} + ({inf_name} - {state})*{rate_name}*dt",
            ]
            self.code.initial[following] = inf_name
            self.code.names[f"{key}.k"] = rate_name
            return
        self.lines += [
            f"d{state}/dt = ({inf_name} - {state})/{tau_name} : 1",
            f"{tau_name} = ({self.curve(f'{key}/tau', tau, symbols)})*second : second",
        ]
        self.code.names[f"{key}.tau"] = tau_name

    def rates(self, gate: Gate, prefix: str) -> dict[str, str]:
        """Exact mode: alpha and beta as subexpressions that inf and tau refer to."""
        symbols = {}
        for rate in ("alpha", "beta"):
            tree = getattr(gate, rate)
            if tree is None or self.tabulated(f"{gate.id}/inf"):
                continue
            rate_name = f"{prefix}_{rate}_{self.suffix}"
            self.lines.append(f"{rate_name} = ({self.curve(rate, tree, {})})/second : 1/second")
            symbols[rate] = f"({rate_name}*second)"
        return symbols

    def gate(self, gate: Gate) -> str:
        """Emit one gate; return the factor it contributes to the open fraction."""
        prefix = identifier(gate.id, what="gate id")
        state = self.name(prefix)
        if gate.kind == "kinetic":
            return self.kinetic(gate, prefix)
        if gate.kind == "fractional":
            parts = []
            for sub in gate.subgates:
                sub_prefix = f"{prefix}_{identifier(sub.id, what='subGate id')}"
                sub_state = self.name(sub_prefix)
                self.dynamic(sub_state, sub_prefix, f"{gate.id}/{sub.id}", sub.inf, sub.tau, {})
                parts.append(f"{sub.fraction!r}*{sub_state}")
            self.lines.append(f"{state} = {' + '.join(parts)} : 1")
        elif gate.kind == "instantaneous":
            symbols = self.rates(gate, prefix)
            self.lines.append(f"{state} = {self.curve(f'{gate.id}/inf', gate.inf, symbols)} : 1")
            self.code.names[f"{gate.id}.inf"] = state
        else:
            symbols = self.rates(gate, prefix)
            self.dynamic(state, prefix, gate.id, gate.inf, gate.tau, symbols)
        if gate.fcond is not None:
            return f"({expr.to_brian2(gate.fcond, {'q': state})})"
        return state if gate.instances == 1 else f"{state}**{gate.instances}"

    def kinetic(self, gate: Gate, prefix: str) -> str:
        """Occupancy equations; the last state is 1 minus the others, so they sum to 1 exactly."""
        occupancy = {st.id: self.name(prefix, identifier(st.id, what="state id")) for st in gate.states}
        inflow: dict[str, list[str]] = {st.id: [] for st in gate.states}
        outflow: dict[str, list[str]] = {st.id: [] for st in gate.states}
        for t in gate.transitions:
            names = {}
            for rate in ("rf", "rr"):
                key = f"{gate.id}/{t.id}/{rate}"
                names[rate] = self.name(prefix, identifier(t.id, what="transition id"), rate)
                self.lines.append(f"{names[rate]} = ({self.curve(key, getattr(t, rate), {})})/second : 1/second")
                self.code.names[f"{gate.id}/{t.id}.{rate}"] = names[rate]
            inflow[t.target].append(f"{names['rf']}*{occupancy[t.source]}")
            outflow[t.source].append(names["rf"])
            inflow[t.source].append(f"{names['rr']}*{occupancy[t.target]}")
            outflow[t.target].append(names["rr"])
        if self.tabulated(f"{gate.id}/P/0/0"):
            return self.kinetic_update(gate, prefix, occupancy)
        last, *integrated = gate.states
        for st in integrated:
            gain = " + ".join(inflow[st.id]) or "0/second"
            loss = " + ".join(outflow[st.id]) or "0/second"
            self.lines.append(f"d{occupancy[st.id]}/dt = {gain} - ({loss})*{occupancy[st.id]} : 1")
            self.code.initial[occupancy[st.id]] = self.curve(f"{gate.id}/{st.id}/inf", None, {})
        others = " - ".join(occupancy[st.id] for st in integrated)
        self.lines.append(f"{occupancy[last.id]} = 1 - {others} : 1")
        open_terms = [f"{st.relative_conductance!r}*{occupancy[st.id]}" for st in gate.states if st.relative_conductance]
        q = self.name(prefix)
        self.lines.append(f"{q} = {' + '.join(open_terms) or '0.0'} : 1")
        return q if gate.instances == 1 else f"{q}**{gate.instances}"

    def kinetic_update(self, gate: Gate, prefix: str, occupancy: dict[str, str]) -> str:
        """Occupancies stepped by the tabulated transition matrix: p_j <- sum_i p_i P_ij(v)."""
        names = [occupancy[st.id] for st in gate.states]
        for j, name in enumerate(names):
            self.lines.append(f"{name} : 1")
            self.code.initial[name] = self.curve(f"{gate.id}/{gate.states[j].id}/inf", None, {})
            terms = " + ".join(f"{self.curve(f'{gate.id}/P/{i}/{j}', None, {})}*{source}" for i, source in enumerate(names))
            self.code.updates.append(f"next_{name} = {terms}")
        self.code.updates += [f"{name} = next_{name}" for name in names]
        open_terms = [f"{st.relative_conductance!r}*{occupancy[st.id]}" for st in gate.states if st.relative_conductance]
        q = self.name(prefix)
        self.lines.append(f"{q} = {' + '.join(open_terms) or '0.0'} : 1")
        return q if gate.instances == 1 else f"{q}**{gate.instances}"

    def emit(self) -> BrianCode:
        g, e, current = self.name("g"), self.name("E"), self.name("I")
        if self.channel.kind == "passive":
            self.lines.append(f"{current} = {g}*(v - {e}) : amp/meter**2")
        else:
            fopen = self.name("fopen")
            factors = [self.gate(gate) for gate in self.channel.gates]
            scale = self.channel.conductance_scale
            if not isinstance(scale, expr.Num):
                scale_name = self.name("scale")
                self.lines.append(f"{scale_name} = {self.curve('scale', scale, {})} : 1")
                factors.insert(0, scale_name)
            elif scale.value != 1.0:
                factors.insert(0, repr(scale.value))
            self.lines.insert(0, f"{fopen} = {' * '.join(factors) or '1.0'} : 1")
            self.lines.insert(0, f"{current} = {g}*{fopen}*(v - {e}) : amp/meter**2")
        self.lines += [f"{g} : siemens/meter**2", f"{e} : volt"]
        try:
            self.code.equations = Equations("\n".join(self.lines))
        except Exception as err:  # Brian2 raises several types for bad equations
            raise ModelError(f"{self.channel.where}: generated equations rejected by Brian2: {err}") from err
        return self.code


def to_brian2(
    channel: Channel, tables: Tables | None, name: str, tables2d: Tables2D | None = None, conc: str = "Ca_i",
    step_dt: float | None = None,
) -> BrianCode:  # fmt: skip
    """Brian2 equations for ``channel``: table lookups when ``tables`` is given, else exact expressions.

    Parameters
    ----------
    channel : Channel
        Bound to its temperature (`nml2lut.model.bind`).
    tables : Tables or None
        Columns named ``"<gate>/inf"``, ``"<gate>/tau"``, ``"<gate>/<sub>/inf"``...
    name : str
        Suffix of every name (``"Na"`` gives ``I_Na``, ``g_Na``, ``m_Na``...).
    tables2d : Tables2D, optional
        Curves of voltage and concentration (column names as in ``tables``,
        ``"scale"`` for a concentration-dependent conductance scaling).
    conc : str
        The Brian2 variable holding the concentration those curves read, in mmolar.
    step_dt : float, optional
        Gates are stepped by their update code with the tabulated factor
        ``<key>/k`` = (1 - exp(-dt/tau))/dt for this time step (s), instead of
        integrating ``dx/dt = (inf - x)/tau`` (``gating="step"``).
    """
    suffix = identifier(name, what="channel name")
    conc = identifier(conc, what="concentration variable")
    return _Emitter(channel, tables, suffix, tables2d, conc, step_dt).emit()
