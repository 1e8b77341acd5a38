"""channel: the public entry points `load_channel` / `load_channels` and the loaded channel.

Wires the stages together: parse -> bind temperature -> tables -> Brian2.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace

import numpy as np

from . import expr
from .emit import BrianCode, identifier, to_brian2
from .errors import ModelError, UnitError, UnsupportedError
from .grids import Grid, find_breakpoints
from .model import Channel, bind
from .parse import read_library
from .steady import occupancy_curves, transition_curves
from .tables import DEFAULT_RANGE, DEFAULT_TOLERANCE, CurveError, Tables, build_tables
from .tables2d import DEFAULT_CONC_RANGE, Tables2D, build_tables_2d
from .units import parse_quantity

__all__ = ["LoadedChannel", "load_channel", "load_channels", "MODES", "to_kelvin"]

MODES = ("lut", "exact")
GATINGS = ("ode", "step")


def to_kelvin(temperature) -> float | None:
    """A temperature as kelvin: NeuroML text (``"34degC"``, ``"307.15K"``) or a Brian2 quantity.

    Raises
    ------
    UnitError
        Not a temperature (a bare number is refused: is it degC or K?).
    """
    if temperature is None:
        return None
    if isinstance(temperature, str):
        value = parse_quantity(temperature, "temperature", where="temperature").value
    else:
        from brian2 import Quantity, kelvin

        if not isinstance(temperature, Quantity) or not temperature.has_same_dimensions(kelvin):
            raise UnitError(
                f"temperature must be text such as '34degC' or a Brian2 quantity in kelvin, got {temperature!r}"
            )
        value = float(temperature / kelvin)
    if not (value > 0 and np.isfinite(value)):
        raise UnitError(f"temperature {temperature!r} is not above absolute zero")
    return value


def _voltage(value, what: str) -> float:
    """A voltage in V from NeuroML text (``"-65mV"``) or a Brian2 quantity."""
    if isinstance(value, str):
        return parse_quantity(value, "voltage", where=what).value
    if hasattr(value, "dim"):
        from brian2 import volt

        if not value.has_same_dimensions(volt):
            raise UnitError(f"{what} {value!r} is not a voltage")
        return float(value / volt)
    raise UnitError(f"{what} {value!r} needs a unit: use brian2 mV or text like '-100mV'")


def _v_range(v_range) -> tuple[float, float]:
    if v_range is None:
        return DEFAULT_RANGE
    if isinstance(v_range, str) or len(v_range) != 2:
        raise UnitError(f"v_range must be a pair (low, high), got {v_range!r}")
    low, high = (_voltage(bound, "v_range bound") for bound in v_range)
    if not high > low:
        raise UnitError(f"v_range {v_range!r} is empty: the upper bound must be above the lower")
    return low, high


@dataclass
class LoadedChannel:
    """A NeuroML2 channel ready for Brian2.

    Attributes
    ----------
    id : str
        The channel id in the file.
    name : str
        The suffix of its Brian2 names (``I_<name>``, ``g_<name>``...).
    mode : str
        ``"lut"`` (table lookups) or ``"exact"`` (the expressions themselves).
    model : Channel
        The channel in normal form, bound to ``temperature``.
    tables : Tables or None
        The tables (``lut`` mode), with their grid and measured errors.
    code : BrianCode
        Equations, namespace and initial values.
    dt : float or None
        The time step (s) the update of kinetic schemes was tabulated for;
        None when the channel has none.
    tables2d : Tables2D or None
        Tables of the curves that depend on the concentration as well.
    conc : str
        The Brian2 variable (mmolar) the concentration-dependent curves read.
    """

    id: str
    name: str
    mode: str
    model: Channel
    tables: Tables | None
    code: BrianCode
    dt: float | None = None
    tables2d: Tables2D | None = None
    conc: str = "Ca_i"
    # what it was loaded from and with: share_grid rebuilds its tables on another grid
    _source: Channel | None = field(default=None, repr=False, compare=False)
    _arguments: dict = field(default_factory=dict, repr=False, compare=False)

    def __repr__(self) -> str:
        # The dataclass repr would print every table value.
        parts = [f"id={self.id!r}", f"name={self.name!r}", f"mode={self.mode!r}",
                 f"gates={[gate.id for gate in self.model.gates]!r}"]  # fmt: skip
        if self.grid is not None:
            parts.append(f"grid={self.grid.n} points on [{self.grid.v_min * 1e3:g}, {self.grid.v_max * 1e3:g}] mV")
        if self.tables2d is not None:
            n_v, n_c = self.tables2d.table.values.shape[:2]
            parts.append(f"tables2d={n_v} x {n_c} (v x {self.conc})")
        if self.tables is not None or self.tables2d is not None:
            parts.append(f"max_error={self.max_error:.3g}")
        return f"LoadedChannel({', '.join(parts)})"

    @property
    def equations(self):
        """The channel's `brian2.Equations` (current density, gates, parameters)."""
        return self.code.equations

    @property
    def namespace(self) -> dict:
        """Names the equations use that the group's namespace must provide."""
        return dict(self.code.namespace)

    @property
    def temperature(self) -> float | None:
        """The temperature (K) the curves were computed for."""
        return self.model.temperature

    @property
    def grid(self) -> Grid | None:
        """The voltage grid of the tables (None in exact mode or without gates)."""
        return None if self.tables is None else self.tables.grid

    @property
    def max_error(self) -> float:
        """The worst measured interpolation error of any table (0.0 in exact mode)."""
        return max(self.errors.values(), key=lambda e: e.max_error).max_error if self.errors else 0.0

    @property
    def errors(self) -> dict[str, CurveError]:
        """Measured interpolation error per curve (``"m/inf"``...), 1-D and 2-D tables alike."""
        errors = {} if self.tables is None else dict(self.tables.errors)
        if self.tables2d is not None:
            errors.update(self.tables2d.errors)
        return errors

    def init(self, group) -> None:
        """Set every gate of ``group`` to its steady state at the group's ``v``.

        Uses string expressions of ``v``, so it works in every target,
        ``cpp_standalone`` included (no state is read back).  For a kinetic
        scheme (``lut`` mode) it also installs the scheme's update: Brian2's
        integrators cannot step stiff schemes stably, so the occupancies are
        advanced once per step by the tabulated exact transition matrix
        (a ``run_regularly`` operation in the "groups" slot, beside the integrators); the group's
        dt must be the one the channel was loaded with.
        """
        for state, expression in self.code.initial.items():
            setattr(group, state, expression)
        if self.code.updates:
            self._attach_update(group)

    def _attach_update(self, group) -> None:
        from brian2 import second

        group_dt = float(group.clock.dt / second)
        if abs(group_dt - self.dt) > 1e-9 * self.dt:
            raise ModelError(
                f"channel {self.id!r}: its gate update was tabulated for dt = {self.dt * 1e3:g} ms but the group "
                f"runs with dt = {group_dt * 1e3:g} ms; load it again with dt="
            )
        # Before the integrators (order -1): the gates step with the voltage at the start of the step
        # while the integrators see their values from the start of the step too.
        group.run_regularly("\n".join(self.code.updates), when="groups", order=-1,
                            name=f"{group.name}_gates_{self.name}")  # fmt: skip

    def curves(self, v, conc=None) -> dict[str, dict[str, np.ndarray]]:
        """Inf and tau of every gate at voltages ``v`` (V) (and concentrations ``conc``, mM), as the Brian2 model sees them.

        Interpolated in ``lut`` mode, exact in ``exact`` mode, after q10
        scaling.  Keys are gate ids (``"gate/subgate"`` for the subgates of a
        fractional gate); an instantaneous gate has only ``"inf"``; tau in s.
        """
        v = np.asarray(v, dtype=float)
        trees = _curve_trees(self.model)
        if conc is None and any("caConc" in expr.free_symbols(t) for t in trees.values()):
            raise ModelError(f"channel {self.id!r} depends on the concentration: pass conc= (mM)")
        conc = None if conc is None else np.broadcast_to(np.asarray(conc, dtype=float), v.shape)
        out: dict[str, dict[str, np.ndarray]] = {}
        for key, tree in trees.items():
            curve, _, quantity = key.rpartition("/")
            if self.tables is not None and key in self.tables.names:
                y = self.tables.interpolate(v, key)
            elif self.tables2d is not None and key in self.tables2d.names:
                y = self.tables2d.interpolate(v, conc, key)
            else:
                with np.errstate(all="ignore"):
                    y = np.broadcast_to(expr.evaluate(tree, {"v": v, "caConc": conc}), v.shape).astype(float)
            out.setdefault(curve, {})[quantity] = y
        return out


def _curve_trees(channel: Channel) -> dict[str, expr.Node]:
    return {f"{gate.id}/{key}": tree for gate in channel.gates for key, tree in gate.curves().items()}


def _curve_function(tree: expr.Node):
    def curve(v: np.ndarray) -> np.ndarray:
        return expr.evaluate(tree, {"v": v})

    return curve


def _time_step(dt) -> float:
    """The simulation step (s) a kinetic scheme's update is tabulated for; default Brian2's defaultclock.dt."""
    from brian2 import Quantity, defaultclock, second

    if dt is None:
        dt = defaultclock.dt
    if isinstance(dt, str):
        return parse_quantity(dt, "time", where="dt").value
    if not isinstance(dt, Quantity) or not dt.has_same_dimensions(second) or not float(dt / second) > 0:
        raise UnitError(f"dt must be a positive Brian2 time or text like '0.025ms', got {dt!r}")
    return float(dt / second)


def _tabulate_1d(bound: Channel, trees: dict, mode: str, v_range, tolerance, n_points, dt,
                 kinetic: str = "auto", grid: Grid | None = None) -> Tables | None:  # fmt: skip
    curves = {k: _curve_function(t) for k, t in trees.items()}
    for gate in bound.gates:  # steady states of kinetic schemes are tabulated in both modes
        if gate.kind != "kinetic":
            continue
        if any("caConc" in expr.free_symbols(t) for t in gate.curves().values()):
            raise UnsupportedError("caConc in a kinetic scheme", f"{gate.element}: concentration-dependent transitions")
        curves.update({f"{gate.id}/{k}": f for k, f in occupancy_curves(gate).items()})
        if kinetic == "matrix" or (kinetic == "auto" and mode == "lut"):
            curves.update({f"{gate.id}/{k}": f for k, f in transition_curves(gate, _time_step(dt)).items()})
    if not curves:
        return None
    switches = {s for tree in trees.values() for s in expr.switches(tree)}
    breakpoints = find_breakpoints([_curve_function(s) for s in switches], v_range)
    return build_tables(
        curves, v_range=v_range, tolerance=tolerance, n_points=n_points, breakpoints=breakpoints,
        label=f"{bound.where}: ", grid=grid,
    )  # fmt: skip


def _curve_function_2d(tree: expr.Node):
    def curve(v: np.ndarray, conc: np.ndarray) -> np.ndarray:
        return expr.evaluate(tree, {"v": v, "caConc": conc})

    return curve


def _step_rate(tau: expr.Node, dt: float) -> expr.Node:
    """k = (1 - exp(-dt/tau))/dt, written exprel(-dt/tau)/tau (accurate for dt << tau)."""
    return expr.Binary("/", expr.Call("exprel", (expr.Binary("/", expr.Num(-dt), tau),)), tau)


def _load(channel: Channel, *, name, temperature, mode, v_range, tolerance, n_points, vshift=None, dt=None,
          conc="Ca_i", conc_range=None, gating="ode", kinetic="auto", g=None, E=None,
          grid: Grid | None = None, tables2d: Tables2D | None = None) -> LoadedChannel:  # fmt: skip
    # kinetic: how kinetic schemes step. "auto": by their tabulated transition matrix
    # in lut mode, as occupancy ODEs in exact mode; "matrix": by the matrix in both
    # modes (as jLEMS steps them: forward Euler cannot step stiff schemes); "ode":
    # as ODEs in both.  grid: put the voltage tables on this grid (see share_grid);
    # tables2d: the concentration-dependent tables, already built for the same arguments.
    if kinetic not in ("auto", "matrix", "ode"):
        raise ModelError(f"kinetic must be 'auto', 'matrix' or 'ode', got {kinetic!r}")
    if mode not in MODES:
        raise ModelError(f"mode must be one of {MODES}, got {mode!r}")
    if gating not in GATINGS or (gating == "step" and mode != "lut"):
        raise ModelError(f"gating must be one of {GATINGS} ('step' with mode='lut'), got {gating!r}")
    bound = bind(channel, to_kelvin(temperature), None if vshift is None else _voltage(vshift, "vshift"))
    requested_range, v_range = v_range, _v_range(v_range)
    trees = _curve_trees(bound) if mode == "lut" else {}
    if mode == "lut" and not isinstance(bound.conductance_scale, expr.Num):
        trees["scale"] = bound.conductance_scale
    step_dt = _time_step(dt) if gating == "step" else None
    if step_dt is not None:
        trees.update({f"{key[:-3]}k": _step_rate(tree, step_dt) for key, tree in list(trees.items())
                      if key.endswith("/tau")})  # fmt: skip
    by_conc = {k: t for k, t in trees.items() if "caConc" in expr.free_symbols(t)}
    plain = {k: t for k, t in trees.items() if k not in by_conc}
    tables = _tabulate_1d(bound, plain, mode, v_range, tolerance, n_points, dt, kinetic, grid)
    if by_conc and tables2d is None:
        tables2d = build_tables_2d(
            {k: _curve_function_2d(t) for k, t in by_conc.items()}, v_range=v_range,
            conc_range=_conc_range(conc_range), tolerance=tolerance, label=f"{bound.where}: ",
        )  # fmt: skip
    suffix = identifier(name if name is not None else channel.id, what="channel name")
    code = _with_constants(to_brian2(bound, tables, suffix, tables2d, conc, step_dt), suffix, g, E)
    step = _time_step(dt) if code.updates or step_dt is not None else None
    arguments = dict(name=name, temperature=temperature, mode=mode, v_range=requested_range, tolerance=tolerance,
                     n_points=n_points, vshift=vshift, dt=dt if step is None else step, conc=conc,
                     conc_range=conc_range, gating=gating, kinetic=kinetic, g=g, E=E)  # fmt: skip
    return LoadedChannel(channel.id, suffix, mode, bound, tables, code, step, tables2d, conc,
                         _source=channel, _arguments=arguments)  # fmt: skip


def _with_constants(code: BrianCode, suffix: str, g, E) -> BrianCode:
    """`code` with ``g_<suffix>`` and ``E_<suffix>`` moved from parameters to namespace constants when given."""
    from brian2 import Equations, meter, siemens, volt

    constants = {}
    if g is not None:
        if isinstance(g, str):
            g = parse_quantity(g, "conductanceDensity", where="g").value * siemens / meter**2
        elif not (hasattr(g, "dim") and g.has_same_dimensions(siemens / meter**2)):
            raise UnitError(f"g {g!r} must be a conductance density: brian2 msiemens/cm**2 or text like '35mS_per_cm2'")
        constants[f"g_{suffix}"] = g
    if E is not None:
        constants[f"E_{suffix}"] = _voltage(E, "E") * volt
    for name in constants:
        if name not in code.equations.parameter_names:
            raise ModelError(f"channel {suffix!r} has no parameter {name!r} to make a constant")
    kept = Equations([eq for eq in code.equations.ordered if eq.varname not in constants])
    return dc_replace(code, equations=kept, namespace={**code.namespace, **constants})


def _conc_range(conc_range) -> tuple[float, float]:
    if conc_range is None:
        return DEFAULT_CONC_RANGE
    if isinstance(conc_range, str) or len(conc_range) != 2:
        raise UnitError(f"conc_range must be a pair (low, high), got {conc_range!r}")
    values = []
    for bound in conc_range:
        if isinstance(bound, str):
            values.append(parse_quantity(bound, "concentration", where="conc_range").value)
        elif hasattr(bound, "dim"):
            from brian2 import mmolar

            if not bound.has_same_dimensions(mmolar):
                raise UnitError(f"conc_range bound {bound!r} is not a concentration")
            values.append(float(bound / mmolar))
        else:
            raise UnitError(f"conc_range bound {bound!r} needs a unit: use brian2 mmolar or text like '1e-6mM'")
    if not 0 < values[0] < values[1]:
        raise UnitError(f"conc_range {conc_range!r} must be positive and increasing")
    return values[0], values[1]


def load_channels(
    path: str | os.PathLike,
    *,
    temperature=None,
    mode: str = "lut",
    v_range=None,
    tolerance: float = DEFAULT_TOLERANCE,
    n_points: int | None = None,
    vshift=None,
    dt=None,
    conc: str = "Ca_i",
    conc_range=None,
    gating: str = "ode",
    names: Mapping[str, str] | None = None,
    share: bool = True,
) -> list[LoadedChannel]:
    """Load every channel of a NeuroML2 or LEMS file (and the files it includes).

    Parameters are those of `load_channel`; ``names`` maps channel ids to
    Brian2 suffixes (default: the id made an identifier); with ``share``
    (default) their voltage tables go on one grid (`nml2lut.share_grid`).

    Returns
    -------
    list of LoadedChannel
        In file order, includes first.
    """
    from .sharing import share_grid  # it builds on this module

    library = read_library(path)
    names = dict(names or {})
    channels = [
        _load(library.build(source), name=names.get(source.id), temperature=temperature, mode=mode,
              v_range=v_range, tolerance=tolerance, n_points=n_points, vshift=vshift, dt=dt, conc=conc,
              conc_range=conc_range, gating=gating)
        for source in library.sources
    ]  # fmt: skip
    return share_grid(channels) if share and n_points is None else channels


def load_channel(
    path: str | os.PathLike,
    channel_id: str | None = None,
    *,
    name: str | None = None,
    temperature=None,
    mode: str = "lut",
    v_range=None,
    tolerance: float = DEFAULT_TOLERANCE,
    n_points: int | None = None,
    vshift=None,
    dt=None,
    conc: str = "Ca_i",
    conc_range=None,
    gating: str = "ode",
    g=None,
    E=None,
) -> LoadedChannel:
    """Load one NeuroML2 ion channel as Brian2 equations backed by lookup tables.

    Parameters
    ----------
    path : path-like
        A NeuroML2 (``<neuroml>``) or LEMS (``<Lems>``) file; its includes are read too.
    channel_id : str, optional
        Which channel; may be omitted when the file (with its includes) has one.
    name : str, optional
        Suffix of the Brian2 names: ``name="Na"`` gives ``I_Na``, ``g_Na``,
        ``E_Na`` and states ``m_Na``, ``h_Na``.  Default: the channel id.
    temperature : str or brian2 Quantity, optional
        ``"34degC"``, ``"307.15K"`` or e.g. ``(273.15 + 34)*kelvin``; required
        when the channel has q10 settings or temperature-dependent rates.
    mode : {"lut", "exact"}
        Table lookups (default) or the exact expressions.
    v_range : (low, high), optional
        The table's voltage range, as Brian2 quantities or NeuroML text;
        default -100 mV to +60 mV.  Outside it the tables hold their edge values.
    tolerance : float
        Bound on the measured interpolation error of every table: absolute
        for steady states, relative for time constants.
    n_points : int, optional
        A fixed number of grid points instead of the automatic choice.
    vshift : str or brian2 Quantity, optional
        The voltage shift seen by rates that require ``vShift`` (as a cell's
        ``channelDensityVShift`` sets it); default the channel's own
        ``vShift`` (``ionChannelVShift``).  Required when a rate needs it and
        the channel has none.
    dt : brian2 Quantity or str, optional
        For kinetic-scheme channels in ``lut`` mode: the simulation time step
        their update is tabulated for (default: Brian2's ``defaultclock.dt``
        at load time).
    conc : str
        The Brian2 variable (unit mmolar, i.e. mol/m^3) holding the calcium
        concentration that concentration-dependent rates (``caConc``) read;
        the group must define it.  Default ``"Ca_i"``.
    conc_range : (low, high), optional
        The concentration axis of their 2-D tables (log-spaced), as Brian2
        quantities or NeuroML text; default 1e-6 to 10 mM.  Outside it the
        tables hold their edge values.
    gating : {"ode", "step"}
        ``"ode"`` (default): ``dm/dt = (m_inf - m)/m_tau``, integrated by the
        group's method.  With ``nml2lut.METHOD`` (nml2lut's exponential Euler,
        `nml2lut.stepper`) each gate steps as ``m = a(v)*m + b(v)``, ``a =
        exp(-dt/m_tau)`` and ``b = m_inf*(1 - a)`` read from the channel's
        table (tabulated for the group's dt when Brian2 generates the code):
        no ``exp`` per gate, one pass over the neurons; any other Brian2
        method (``"exponential_euler"``...) integrates the ODE.  ``"step"``
        (``lut`` mode): each gate is a parameter advanced once per time step by
        the exact exponential step ``m += (m_inf - m)*(1 - exp(-dt/tau))``,
        with the factor tabulated for ``dt``: no ``exp`` at run time.  The
        update is installed by ``.init(group)``, which is then required, and
        refuses a group with another dt.  The update steps ``<gate>_next_X``
        and copies it into ``<gate>_X`` at the start of each step, so a gate
        set by hand must be set in both.
    g, E : str or brian2 Quantity, optional
        The conductance density and reversal potential as constants of the
        model (``g="35mS_per_cm2"`` or ``35*msiemens/cm**2``; ``E="55mV"``)
        instead of per-neuron parameters ``g_<name>``, ``E_<name>`` to be set
        on the group: the namespace then holds them, and the compiled loop
        reads no array for them (a cell of eight channels: sixteen arrays).

    Returns
    -------
    LoadedChannel

    Raises
    ------
    Nml2LutError
        A subclass naming the file, line and element: `ParseError`,
        `IncludeError`, `UnitError`, `ExpressionError`, `ModelError`,
        `UnsupportedError`, `TableError` or `ChannelNotFoundError`.

    Examples
    --------
    >>> import nml2lut
    >>> na = nml2lut.load_channel("example_channels/hh_na.channel.nml", name="Na",
    ...                           temperature="6.3degC")  # doctest: +SKIP
    >>> sorted(na.curves([-0.065]))  # doctest: +SKIP
    ['h', 'm']
    """
    library = read_library(path)
    channel = library.build(library.source(channel_id))
    return _load(channel, name=name, temperature=temperature, mode=mode, v_range=v_range,
                 tolerance=tolerance, n_points=n_points, vshift=vshift, dt=dt, conc=conc,
                 conc_range=conc_range, gating=gating, g=g, E=E)  # fmt: skip
