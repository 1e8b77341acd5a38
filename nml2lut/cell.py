"""cell: single-compartment NeuroML2 cells as Brian2 equations (`load_cell`).

Wires the stages together: parse the cell (`nml2lut.parse.cells`) -> load each
density's channel (`nml2lut.channel`) -> the membrane equation, the density
currents in the NeuroML2 core types' own terms (``iDensity = gDensity*(erev -
v)``, Nernst, GHK), the concentration pools and the calcium current feeding
them.  Names in the equations: ``v``, ``iChannels``, ``iCa``, ``iSyn`` (the
sum of ``I_inj`` and any input currents), ``caConc``/``caConcExt`` (mM) for a
calcium species, ``gDensity_<density>``, ``iDensity_<density>``,
``E_<density>`` and each channel's own names with the density id as suffix.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace

from brian2 import Equations
from brian2.equations.codestrings import Expression
from brian2.equations.equations import SingleEquation

from . import expr
from .channel import LoadedChannel, _load, _v_range, to_kelvin
from .emit import identifier
from .errors import ModelError, Nml2LutError, TableError
from .lookup import EXPREL_FUNCTION_NAME, WHERE_FUNCTION_NAME, make_exprel_function, make_where_function
from .model import fix_symbol
from .parse import read_library
from .parse.cells import CellSpec, DensitySpec, SpeciesSpec, read_cell
from .parse.channels import Library
from .sharing import share_grid
from .tables import DEFAULT_RANGE, DEFAULT_TOLERANCE, GridWarning

__all__ = ["LoadedCell", "load_cell", "CellBuildOptions", "build_cell"]

_R = 8.3144621  # J/(K mol), as the core types define it
_F = 96485.3  # C/mol
_Z_CA = 2.0


#: The voltage the channels' rates read when they lag the membrane potential.
RATE_VOLTAGE = "v_rates"
#: ... and the voltage of the step before, which a gate's steadyState or timeCourse
#: child sees through the rates the gate computed then (`Gate.stale_rates`).
STALE_RATE_VOLTAGE = "v_rates_stale"
POOL_CURRENT = "iCa_pool"
_V = re.compile(r"(?<![A-Za-z0-9_])v(?![A-Za-z0-9_])")


def _shift_register(source: str, prefix: str, length: int) -> list[str]:
    """Code run before each step: ``prefix1`` takes ``source``, each later register the one before."""
    return [f"{prefix}{k} = {prefix}{k - 1}" for k in range(length, 1, -1)] + [f"{prefix}1 = {source}"]


def _with_rate_voltage(loaded: LoadedChannel) -> tuple[LoadedChannel, list[str]]:
    """``loaded`` without its per-step updates (kinetic schemes), and those updates reading `RATE_VOLTAGE`.

    jLEMS steps a kinetic scheme after the membrane equation, from the
    occupancies the currents of the step used; the cell runs these updates
    after the integrators.  The update code is nml2lut's own (validated
    identifiers only), so a whole-word substitution is exact.
    """
    updates = [_V.sub(RATE_VOLTAGE, line) for line in loaded.code.updates]
    code = dc_replace(loaded.code, updates=[], initial=dict(loaded.code.initial))
    return dc_replace(loaded, code=code), updates


def _with_stale_rates(equations: Equations, loaded: LoadedChannel) -> Equations:
    """jLEMS's scheme: a gate's steadyState/timeCourse child reads the gate's alpha and beta of the step before.

    jLEMS steps a component's children before its own derived variables, so a
    child reading its gate's ``alpha`` gets the value the gate computed a step
    earlier, from the voltage its rates saw then (`STALE_RATE_VOLTAGE`).  With
    expressions the curve reads copies of alpha and beta at that voltage; with
    a table of the voltage alone it is looked up there, which is the same
    unless the child also reads ``v`` itself (then it is left as it is).  The
    equations are nml2lut's own (validated identifiers), so whole-word
    substitution is exact.
    """
    curves: dict[str, tuple[str, bool]] = {}  # equation -> (gate prefix, child reads v)
    for gate in loaded.model.gates:
        for curve, reads_v in gate.stale_rates:
            name = loaded.code.names.get(f"{gate.id}.{curve}")
            if name is not None:
                curves[name] = (identifier(gate.id, what="gate id"), reads_v)
    if not curves:
        return equations
    by_name = {eq.varname: eq for eq in equations.ordered}
    out, copies = [], {}
    for eq in equations.ordered:
        if eq.varname not in curves or eq.expr is None:
            out.append(eq)
            continue
        prefix, reads_v = curves[eq.varname]
        code = eq.expr.code
        rates = [f"{prefix}_{rate}_{loaded.name}" for rate in ("alpha", "beta")]
        if any(re.search(rf"\b{rate}\b", code) for rate in rates):
            for rate in rates:
                if rate in by_name:
                    code = re.sub(rf"\b{rate}\b", f"{rate}_stale", code)
                    copies[rate] = by_name[rate]
        elif not reads_v and "caConc" not in code:  # a lookup of the voltage alone
            code = re.sub(rf"\b{RATE_VOLTAGE}\b", STALE_RATE_VOLTAGE, code)
        out.append(SingleEquation(eq.type, eq.varname, dimensions=eq.dim, var_type=eq.var_type,
                                  expr=Expression(code), flags=eq.flags))  # fmt: skip
    for rate, eq in copies.items():
        stale = re.sub(rf"\b{RATE_VOLTAGE}\b", STALE_RATE_VOLTAGE, eq.expr.code)
        out.append(SingleEquation(eq.type, f"{rate}_stale", dimensions=eq.dim, var_type=eq.var_type,
                                  expr=Expression(stale), flags=eq.flags))  # fmt: skip
    return Equations(out)


class NernstWarning(UserWarning):
    """A Nernst or GHK density sees no external concentration and carries no current (as in the core types)."""


@dataclass(frozen=True)
class CellBuildOptions:
    """How the channels of a cell are loaded (see `load_cell`)."""

    temperature: float | None = None
    mode: str = "lut"
    # Wider than load_channel's default: cells in the wild hyperpolarise below
    # -100 mV under injected current (the corpus's reach -120 mV).
    v_range: tuple[float, float] | None = (-0.15, 0.08)
    tolerance: float = DEFAULT_TOLERANCE
    dt: object = None
    # Kinetic schemes step by their tabulated transition matrix in both modes, as
    # jLEMS steps them: integrating stiff occupancy ODEs explicitly is unstable, and
    # exponential Euler divides by a total outflow that can be exactly zero.
    kinetic: str = "matrix"
    extra_currents: tuple[str, ...] = ()
    # Steps by which the channels' rates lag the membrane potential.  jLEMS
    # passes v down the component tree one level per step (cell -> density ->
    # channel -> rate), so its rates see v from three steps before.
    rate_lag: int = 0
    # Steps by which the calcium current the pools read lags the membrane's (jLEMS).
    pool_current_lag: int = 0
    # The concentration axis (mM) of 2-D tables.  Wider than load_channel's default:
    # pools in the wild run far beyond physiological values (Traub's "concentration"
    # reaches thousands of mM), and a value off the table is held at the edge.
    conc_range: tuple[float, float] = (1e-8, 1e4)


@dataclass
class LoadedCell:
    """A single-compartment NeuroML2 cell ready for Brian2.

    Attributes
    ----------
    id : str
        The cell id in the file.
    spec : CellSpec
        The cell as read (SI values).
    channels : dict of str to LoadedChannel
        The loaded channel of each density, keyed by density id.
    equations : brian2.Equations
    namespace : dict
    threshold : str
        The spike condition (``"v > v_thresh"`` with the cell's ``spikeThresh``).
    """

    id: str
    spec: CellSpec
    channels: dict[str, LoadedChannel]
    equations: Equations
    namespace: dict
    threshold: str
    initial: list[tuple[str, str]] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)
    quantities: dict[str, tuple[str, str]] = field(default_factory=dict)
    kinetic_closed: list[tuple[str, list[str]]] = field(default_factory=list)
    temperature: float | None = None
    before_step: list[str] = field(default_factory=list)
    after_step: list[str] = field(default_factory=list)
    initial_registers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def max_error(self) -> float:
        """The worst measured table error of any of the cell's channels (0.0 in exact mode)."""
        return max((c.max_error for c in self.channels.values()), default=0.0)

    def init(self, group, *, kinetic_start: str = "steady") -> None:
        """Set the initial state of ``group`` as the NeuroML2 core types do, and install per-step updates.

        ``v`` starts at ``initMembPotential``, each pool at its ``OnStart``
        value, then HH gates at their steady state for that ``v``.  Kinetic
        schemes start at their steady state (``kinetic_start="steady"``) or,
        as jLEMS starts them, with all occupancy in the first state
        (``"first"``).  Also installs the pools' ``OnCondition``s (such as
        the floor at zero) and the channels' own updates.
        """
        if kinetic_start not in ("steady", "first"):
            raise ModelError(f"kinetic_start must be 'steady' or 'first', got {kinetic_start!r}")
        for name, expression in self.initial:
            setattr(group, name, expression)
        for channel in self.channels.values():
            channel.init(group)
        if kinetic_start == "first":
            for first, others in self.kinetic_closed:
                # In exact mode one occupancy is 1 minus the others (read-only).
                for name, value in ((first, 1.0), *((other, 0.0) for other in others)):
                    if not group.variables[name].read_only:
                        setattr(group, name, value)
        # Registers of quantities the whole initial state defines (the calcium current).
        for name, expression in self.initial_registers:
            setattr(group, name, expression)
        if self.conditions:
            group.run_regularly("\n".join(self.conditions), when="after_groups", name=f"{group.name}_pool_events")
        if self.before_step:
            group.run_regularly("\n".join(self.before_step), when="before_groups", name=f"{group.name}_rate_lag")
        if self.after_step:
            group.run_regularly("\n".join(self.after_step), when="after_groups", order=-1,
                                name=f"{group.name}_kinetic_after")  # fmt: skip

    def neuron_group(self, N: int, *, method=None, **kwargs):
        """A ready `brian2.NeuronGroup` of ``N`` such cells, initialised (see `init`).

        ``method`` defaults to `nml2lut.METHOD` where Brian2 can apply it to
        these equations, else to forward Euler (``"euler"``, jLEMS's scheme).
        A spike is emitted when ``v`` rises through ``spikeThresh``.
        """
        from brian2 import NeuronGroup

        group = NeuronGroup(
            N, self.equations, threshold=self.threshold, refractory=self.threshold,
            method=method if method is not None else default_method(), namespace=dict(self.namespace), **kwargs,
        )  # fmt: skip
        self.init(group)
        return group

    def variable(self, path: str) -> tuple[str, str]:
        """The Brian2 name and unit of a LEMS quantity path relative to the cell (``"v"``, ``"caConc"``...).

        Raises
        ------
        ModelError
            The cell has no such quantity (the message lists what it has).
        """
        try:
            return self.quantities[path]
        except KeyError:
            tails = sorted({p.rpartition("/")[2] for p in self.quantities})
            raise ModelError(f"{self.spec.where}: no quantity {path!r} (paths end in: {', '.join(tails)})") from None


def default_method():
    """`nml2lut.METHOD`, falling back on forward Euler for equations it cannot integrate."""
    from . import METHOD

    return (METHOD, "euler") if isinstance(METHOD, str) else METHOD


def load_cell(
    path: str | os.PathLike,
    cell_id: str | None = None,
    *,
    temperature=None,
    mode: str = "lut",
    v_range=None,
    tolerance: float = DEFAULT_TOLERANCE,
    dt=None,
) -> LoadedCell:
    """Load a single-compartment NeuroML2 cell as Brian2 equations.

    Parameters
    ----------
    path : path-like
        A NeuroML2 or LEMS file holding the cell (its includes are read too).
    cell_id : str, optional
        Which ``<cell>`` or ``<pointCellCondBased>``; may be omitted when there is one.
    temperature : str or brian2 Quantity, optional
        ``"34degC"``; required when a channel has q10 settings or a density
        uses the Nernst or GHK equation.
    mode : {"lut", "exact"}
        Table lookups (default) or exact expressions, for every channel.
    v_range, tolerance, dt
        As in `nml2lut.load_channel`.

    Returns
    -------
    LoadedCell
        ``.equations``, ``.namespace``, ``.init(group)`` and
        ``.neuron_group(N)``; an injected current goes into ``I_inj`` (amp).

    Raises
    ------
    Nml2LutError
        A subclass naming the file, line and element; `UnsupportedError`
        for a cell with more than one compartment.
    """
    library = read_library(path)
    options = CellBuildOptions(temperature=to_kelvin(temperature), mode=mode,
                               v_range=CellBuildOptions.v_range if v_range is None else _v_range(v_range),
                               tolerance=tolerance, dt=dt)  # fmt: skip
    return build_cell(library, read_cell(library, cell_id), options)


def build_cell(library: Library, spec: CellSpec, options: CellBuildOptions) -> LoadedCell:
    """Assemble the Brian2 model of a cell already read (see `load_cell`)."""
    return _CellBuilder(library, spec, options).build()


class _CellBuilder:
    def __init__(self, library: Library, spec: CellSpec, options: CellBuildOptions):
        self.library = library
        self.spec = spec
        self.options = options
        self.lines: list[str] = []
        self.namespace: dict = {}
        self.initial: list[tuple[str, str]] = [("v", f"{spec.v0!r}*volt")]
        self.conditions: list[str] = []
        self.quantities: dict[str, tuple[str, str]] = {
            "v": ("v", "volt"), "iChannels": ("iChannels", "amp"), "iSyn": ("iSyn", "amp"),
            "iCa": ("iCa", "amp"), "caConc": ("caConc", "mmolar"), "caConcExt": ("caConcExt", "mmolar"),
        }  # fmt: skip
        self.channel_equations: list[Equations] = []
        self.channels: dict[str, LoadedChannel] = {}
        self.kinetic_closed: list[tuple[str, list[str]]] = []
        self.after_step: list[str] = []
        self.calcium = next((s for s in spec.species if s.ion == "ca"), None)

    # -- densities ---------------------------------------------------------
    def _channel(self, density: DensitySpec, suffix: str) -> LoadedChannel:
        source = self.library.source(density.channel) if density.channel in self.library.ids else None
        if source is None:
            raise ModelError(f"{density.where}: no ion channel {density.channel!r} (known: "
                             f"{', '.join(self.library.ids) or 'none'})")  # fmt: skip
        channel = self.library.build(source)
        if self.calcium is None:
            channel = fix_symbol(channel, "caConc", 0.0)  # no pool: the core types give caConc = 0
        if density.kind == "channelDensityVShift":
            vshift = density.vshift
        else:
            vshift = None if channel.vshift is not None else 0.0  # the densities' constant vShift = 0 mV
        from brian2 import kelvin, volt

        o = self.options

        def load(v_range):
            return _load(
                channel, name=suffix, temperature=None if o.temperature is None else o.temperature * kelvin,
                mode=o.mode, v_range=None if v_range is None else tuple(x * volt for x in v_range),
                tolerance=o.tolerance, n_points=None, vshift=None if vshift is None else vshift * volt, dt=o.dt,
                conc="caConc", conc_range=tuple(f"{c!r}mM" for c in o.conc_range), kinetic=o.kinetic,
            )  # fmt: skip

        try:
            return load(o.v_range)
        except TableError as err:
            if o.v_range != CellBuildOptions.v_range:
                raise  # a range the caller chose is kept, good or bad
            # The wide default range reaches voltages where some published rate
            # expressions stop making sense (a negative time constant at -150 mV);
            # the channel's own default range is the one its author tested.
            warnings.warn(f"{density.where}: {err}; tabulated over the channel default "
                          f"{DEFAULT_RANGE[0] * 1e3:g}..{DEFAULT_RANGE[1] * 1e3:g} mV instead", GridWarning,
                          stacklevel=2)  # fmt: skip
            return load(DEFAULT_RANGE)

    def _load_all(self) -> dict[str, LoadedChannel]:
        """The channel of every density (by suffix), their voltage tables on one grid (see `share_grid`)."""
        loaded = {}
        for density in self.spec.densities:
            suffix = identifier(density.id, what="density id")
            if suffix in loaded:
                raise ModelError(f"{density.where}: density id clashes with another after making it an identifier")
            try:
                loaded[suffix] = self._channel(density, suffix)
            except Nml2LutError as err:
                raise type(err)(f"{density.where}: {err}") from err
        return dict(zip(loaded, share_grid(list(loaded.values())), strict=True))

    def _density(self, density: DensitySpec, loaded: LoadedChannel) -> str:
        """Emit one density; return the current it adds to ``iChannels`` (amp)."""
        suffix = loaded.name
        self.channels[suffix] = loaded
        kept = Equations([eq for eq in loaded.code.equations.ordered
                          if eq.varname not in (f"I_{suffix}", f"g_{suffix}", f"E_{suffix}")])  # fmt: skip
        if self.options.rate_lag:
            kept = _with_stale_rates(kept.substitute(v=RATE_VOLTAGE), loaded)
            loaded, updates = _with_rate_voltage(loaded)
            self.after_step += updates
            self.channels[suffix] = loaded
        self.channel_equations.append(kept)
        self.namespace.update(loaded.namespace)
        self._channel_quantities(density, loaded, suffix)
        fopen = f"fopen_{suffix}" if loaded.model.kind != "passive" else "1"
        point = density.kind in ("channelPopulation", "channelPopulationNernst")
        if not point and self.spec.area is None:
            raise ModelError(f"{density.where}: a point cell has no membrane area for a density")
        if point:
            g_single = loaded.model.conductance
            self.lines.append(f"gTotal_{suffix} = {density.number * g_single!r}*siemens*{fopen} : siemens")
            erev = self._erev(density, suffix)
            self.lines.append(f"i_{suffix} = gTotal_{suffix}*({erev} - v) : amp")
            self.quantities[f"{density.id}/i"] = (f"i_{suffix}", "amp")
            self.quantities[f"{density.id}/geff"] = (f"gTotal_{suffix}", "siemens")
            return f"i_{suffix}"
        if density.kind == "channelDensityGHK":
            self._ghk(density, suffix, fopen)
        elif density.kind == "channelDensityGHK2":
            self._ghk2(density, suffix, fopen)
        else:
            self.initial.append((f"g_{suffix}", f"{density.cond_density!r}*siemens/meter**2"))
            self.lines.append(f"g_{suffix} : siemens/meter**2 (constant)")
            scale = "1" if density.kind != "channelDensityNernst" or self._has_external() else "0"
            self.lines.append(f"gDensity_{suffix} = {scale}*g_{suffix}*{fopen} : siemens/meter**2")
            erev = self._erev(density, suffix)
            self.lines.append(f"iDensity_{suffix} = gDensity_{suffix}*({erev} - v) : amp/meter**2")
            self.quantities[self._membrane(f"{density.id}/gDensity")] = (f"gDensity_{suffix}", "siemens/meter**2")
        self.quantities[self._membrane(f"{density.id}/iDensity")] = (f"iDensity_{suffix}", "amp/meter**2")
        return f"iDensity_{suffix}*{self.spec.area!r}*meter**2"

    def _membrane(self, rest: str) -> str:
        return f"biophysicalProperties/membraneProperties/{rest}" if self.spec.kind == "cell" else rest

    def _aliases(self) -> None:
        """Paths may name the biophysicalProperties by its id or by its element name; accept both."""
        if self.spec.kind != "cell" or not self.spec.biophysics:
            return
        head = "biophysicalProperties/"
        for path, target in list(self.quantities.items()):
            if path.startswith(head):
                self.quantities[f"{self.spec.biophysics}/{path[len(head):]}"] = target

    def _has_external(self) -> bool:
        return self.calcium is not None and self.calcium.initial_ext > 0

    def _needs_temperature(self, density: DensitySpec) -> float:
        if self.options.temperature is None:
            raise ModelError(f"{density.where}: a {density.kind} needs the temperature; pass temperature=")
        return self.options.temperature

    def _erev(self, density: DensitySpec, suffix: str) -> str:
        """The reversal potential: a constant, or the Nernst potential of calcium."""
        key = (self._membrane(f"{density.id}/erev") if density.kind not in ("channelPopulation",
               "channelPopulationNernst") else f"{density.id}/erev")  # fmt: skip
        self.quantities[key] = (f"E_{suffix}", "volt")
        if density.kind in ("channelDensity", "channelDensityVShift", "channelPopulation"):
            self.lines.append(f"E_{suffix} : volt (constant)")
            self.initial.append((f"E_{suffix}", f"{density.erev!r}*volt"))
            return f"E_{suffix}"
        factor = _R * self._needs_temperature(density) / (_Z_CA * _F)
        if not self._has_external():
            self._needs_external(density)
            self.lines.append(f"E_{suffix} = 0*volt : volt")
            return f"E_{suffix}"
        self.lines.append(f"E_{suffix} = {factor!r}*volt*log(caConcExt/caConc) : volt")
        return f"E_{suffix}"

    def _ghk(self, density: DensitySpec, suffix: str, fopen: str) -> None:
        temperature = self._needs_temperature(density)
        k = _Z_CA * _F / (_R * temperature)  # per volt
        self.namespace[EXPREL_FUNCTION_NAME] = make_exprel_function()
        self.initial.append((f"P_{suffix}", f"{density.permeability!r}*meter/second"))
        self.lines.append(f"P_{suffix} : meter/second (constant)")
        if self._no_current_without_external(density, suffix):
            return
        x = f"(-{k!r}*v/volt)"
        self.lines.append(
            f"iDensity_{suffix} = -{fopen}*P_{suffix}*{_Z_CA * _F!r}*(coulomb/mole)*(caConc - caConcExt*exp({x}))"
            f"/{EXPREL_FUNCTION_NAME}({x}) : amp/meter**2"
        )

    def _ghk2(self, density: DensitySpec, suffix: str, fopen: str) -> None:
        temperature = self._needs_temperature(density)
        tmp = 25 * temperature / (293.15 * 2)
        self.namespace[EXPREL_FUNCTION_NAME] = make_exprel_function()
        self.initial.append((f"g_{suffix}", f"{density.cond_density!r}*siemens/meter**2"))
        self.lines += [f"g_{suffix} : siemens/meter**2 (constant)",
                       f"gDensity_{suffix} = g_{suffix}*{fopen} : siemens/meter**2"]  # fmt: skip
        self.quantities[self._membrane(f"{density.id}/gDensity")] = (f"gDensity_{suffix}", "siemens/meter**2")
        if self._no_current_without_external(density, suffix):
            return
        x = f"(v/mV/{tmp!r})"
        self.lines.append(
            f"iDensity_{suffix} = gDensity_{suffix}*{tmp * 1e-3!r}*volt*(1 - (caConc/caConcExt)*exp({x}))"
            f"/{EXPREL_FUNCTION_NAME}({x}) : amp/meter**2"
        )

    def _no_current_without_external(self, density: DensitySpec, suffix: str) -> bool:
        """Without an external calcium concentration a GHK density carries no current (core types' Case)."""
        if self._has_external():
            return False
        self._needs_external(density)
        self.lines.append(f"iDensity_{suffix} = 0*amp/meter**2 : amp/meter**2")
        return True

    def _needs_external(self, density: DensitySpec) -> None:
        warnings.warn(f"{density.where}: no external calcium concentration: the density carries no current, "
                      "as in the NeuroML2 core types", NernstWarning, stacklevel=5)  # fmt: skip

    def _channel_quantities(self, density: DensitySpec, loaded: LoadedChannel, suffix: str) -> None:
        """Paths ``<density>/<channel>/<gate>/q``... (under ``<biophysics>/membraneProperties`` for a cell)."""
        point = density.kind in ("channelPopulation", "channelPopulationNernst")
        base = f"{density.id}/{density.channel}" if point else self._membrane(f"{density.id}/{density.channel}")
        if loaded.model.kind != "passive":
            self.quantities[f"{base}/fopen"] = (f"fopen_{suffix}", "1")
        names = loaded.code.names
        for gate in loaded.model.gates:
            prefix = identifier(gate.id, what="gate id")
            self.quantities[f"{base}/{gate.id}/q"] = (f"{prefix}_{suffix}", "1")
            for quantity in ("inf", "tau"):
                if f"{gate.id}.{quantity}" in names:
                    unit = "second" if quantity == "tau" else "1"
                    self.quantities[f"{base}/{gate.id}/{quantity}"] = (names[f"{gate.id}.{quantity}"], unit)
            if gate.kind == "kinetic":
                states = [f"{prefix}_{identifier(st.id, what='state id')}_{suffix}" for st in gate.states]
                for st, name in zip(gate.states, states):
                    self.quantities[f"{base}/{gate.id}/{st.id}/occupancy"] = (name, "1")
                self.kinetic_closed.append((states[0], states[1:]))

    # -- pools ---------------------------------------------------------------
    def _pool(self, species: SpeciesSpec) -> None:
        if species.ion == "ca":
            inside, outside = "caConc", "caConcExt"
        else:
            ion = identifier(species.ion, what="ion")
            inside, outside = f"conc_{ion}", f"concExt_{ion}"
            self.quantities[f"{species.id}/concentration"] = (inside, "mmolar")
        pool = species.pool
        symbols = {
            "concentration": f"({inside}/mmolar)", "extConcentration": f"({outside}/mmolar)",
            "iCa": f"({POOL_CURRENT}/amp)" if self.options.pool_current_lag else "(iCa/amp)",
            "surfaceArea": repr(self.spec.area), "initialConcentration": repr(species.initial),
            "initialExtConcentration": repr(species.initial_ext), "t": "(t/second)",
        }  # fmt: skip
        if self.options.temperature is not None:
            symbols["temperature"] = repr(self.options.temperature)
        state_names = {"concentration": inside, "extConcentration": outside}
        for state in pool.states:
            if state not in state_names:
                state_names[state] = f"{identifier(state, what='state')}_{identifier(species.ion, what='ion')}"
                symbols[state] = f"{state_names[state]}"
        try:
            for state, name in state_names.items():
                unit = "mmolar" if state in ("concentration", "extConcentration") else "1"
                if state in pool.derivatives:
                    rhs = expr.to_brian2(pool.derivatives[state], symbols)
                    self.lines.append(f"d{name}/dt = ({rhs})*{unit}/second : {unit}")
                else:
                    self.lines.append(f"{name} : {unit}")
                if state in pool.on_start:
                    self.initial.append((name, f"({expr.to_brian2(pool.on_start[state], symbols)})*{unit}"))
            for test, assignments in pool.on_conditions:
                for state, value in assignments.items():
                    if state not in state_names:
                        raise ModelError(f"{pool.where}: OnCondition assigns {state!r}, which is not a state")
                    unit = "mmolar" if state in ("concentration", "extConcentration") else "1"
                    chosen = expr.Cond(((test, value),), expr.Sym(state))
                    self.conditions.append(f"{state_names[state]} = ({expr.to_brian2(chosen, symbols)})*{unit}")
                    self.namespace[WHERE_FUNCTION_NAME] = make_where_function()
        except Nml2LutError as err:
            raise type(err)(f"{pool.where}: {err}") from err

    # -- the whole cell --------------------------------------------------------
    def build(self) -> LoadedCell:
        spec = self.spec
        channel_currents, calcium_currents = [], []
        loaded = self._load_all()
        for density, channel in zip(spec.densities, loaded.values(), strict=True):
            current = self._density(density, channel)
            channel_currents.append(current)
            if density.ion == "ca":
                calcium_currents.append(current)
        for species in spec.species:
            self._pool(species)
        if self.calcium is None:
            self.lines += ["caConc = 0*mmolar : mmolar", "caConcExt = 0*mmolar : mmolar"]
        inputs = " + ".join(("I_inj", *self.options.extra_currents))
        before_step = []
        if self.options.rate_lag:
            lag = self.options.rate_lag
            registers = [f"v_lag{k}" for k in range(1, lag + 2)]  # one more for STALE_RATE_VOLTAGE
            self.lines += [f"{name} : volt" for name in registers] + [f"{RATE_VOLTAGE} = v_lag{lag} : volt",
                                                                      f"{STALE_RATE_VOLTAGE} = v_lag{lag + 1} : volt"]
            self.initial[1:1] = [(name, "v") for name in registers]
            before_step = _shift_register("v", "v_lag", lag + 1)
        pool_registers = []
        if self.options.pool_current_lag and spec.species:
            # A pool reads iCa through the cell, which sums it after its children have
            # stepped: the pool steps with the current of the step before.
            lag = self.options.pool_current_lag + 1
            self.lines += [f"iCa_lag{k} : amp" for k in range(1, lag + 1)] + [f"{POOL_CURRENT} = iCa_lag{lag} : amp"]
            before_step += _shift_register("iCa", "iCa_lag", lag)
            pool_registers = [(f"iCa_lag{k}", "iCa") for k in range(1, lag + 1)]
        self.lines += [
            f"dv/dt = (iChannels + iSyn)/({spec.capacitance!r}*farad) : volt",
            f"iChannels = {' + '.join(channel_currents) or '0*amp'} : amp",
            f"iCa = {' + '.join(calcium_currents) or '0*amp'} : amp",
            f"iSyn = {inputs} : amp",
            "I_inj : amp",
            f"v_thresh = {spec.threshold!r}*volt : volt",
        ]
        try:
            equations = Equations("\n".join(self.lines))
            for part in self.channel_equations:
                equations = equations + part
        except Exception as err:  # Brian2 raises several types for bad equations
            raise ModelError(f"{spec.where}: the cell's equations were rejected by Brian2: {err}") from err
        self._aliases()
        return LoadedCell(
            id=spec.id, spec=spec, channels=self.channels, equations=equations, namespace=self.namespace,
            threshold="v > v_thresh", initial=self.initial, conditions=self.conditions,
            quantities=self.quantities, kinetic_closed=self.kinetic_closed, temperature=self.options.temperature,
            before_step=before_step, after_step=self.after_step,
            initial_registers=pool_registers,
        )  # fmt: skip

