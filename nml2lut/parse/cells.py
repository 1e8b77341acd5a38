"""parse.cells: single-compartment NeuroML2 cells -> `CellSpec`.

Reads what the core cell types define (``Cells.xml``): a ``<cell>`` with a
one-segment morphology and ``biophysicalProperties`` (membrane properties:
channel densities and populations, capacitance, initial potential, spike
threshold; intracellular properties: ion species and their concentration
models), or a ``<pointCellCondBased>`` with a total capacitance and channel
populations.  Values are SI floats.  Every error names the file, line and
element.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from lxml import etree

from .. import expr
from ..errors import ModelError, UnitError, UnsupportedError
from ..units import Dimension, dimension_name
from .channels import Library
from .componenttypes import Component
from .coreconc import BASE_CONCENTRATION_MODEL
from .xmlread import component_type as _type_of
from .xmlread import describe as _where
from .xmlread import local_name

__all__ = ["CellSpec", "DensitySpec", "SpeciesSpec", "PoolSpec", "read_cell", "find_element", "CELL_TYPES",
           "DENSITY_TYPES", "POPULATION_TYPES"]  # fmt: skip

CELL_TYPES = frozenset({"cell", "pointCellCondBased", "pointCellCondBasedCa"})
DENSITY_TYPES = frozenset(
    {"channelDensity", "channelDensityVShift", "channelDensityNernst", "channelDensityGHK", "channelDensityGHK2"}
)
POPULATION_TYPES = frozenset({"channelPopulation", "channelPopulationNernst"})
_NOT_SUPPORTED = {
    "channelDensityNonUniform": "non-uniform channel densities",
    "channelDensityNonUniformNernst": "non-uniform channel densities",
    "channelDensityNonUniformGHK": "non-uniform channel densities",
    "channelDensityNernstCa2": "a second calcium pool (ca2)",
}
_IGNORED = {"notes", "annotation", "property", "resistivity"}


@dataclass(frozen=True)
class DensitySpec:
    """One channel density or population of a cell.

    Attributes
    ----------
    id : str
        The density's id (unique in the cell).
    kind : str
        Its core type (``"channelDensityNernst"``, ``"channelPopulation"``...).
    channel : str
        The id of its ion channel.
    ion : str or None
        The ``ion`` attribute (``"ca"`` densities feed the calcium pool).
    cond_density : float or None
        S/m^2 (densities other than GHK).
    erev : float or None
        V, for the kinds with a fixed reversal potential.
    vshift : float or None
        V, of a ``channelDensityVShift``.
    permeability : float or None
        m/s, of a ``channelDensityGHK``.
    number : float or None
        Channel count of a population.
    where : str
        File, line and element, for messages.
    """

    id: str
    kind: str
    channel: str
    ion: str | None
    where: str
    cond_density: float | None = None
    erev: float | None = None
    vshift: float | None = None
    permeability: float | None = None
    number: float | None = None


@dataclass(frozen=True)
class PoolSpec:
    """A concentration model, resolved: trees over SI numbers, states and requirements.

    Attributes
    ----------
    id, type : str
        The component id and its ComponentType.
    derivatives : dict of str to Node
        ``d state/dt`` for the states that have one.
    states : dict of str to Dimension
    on_start : dict of str to Node
        Initial value of each state.
    on_conditions : list of (Node, dict of str to Node)
        Tests and the state assignments they trigger.
    where : str
    """

    id: str
    type: str
    states: dict[str, Dimension]
    derivatives: dict[str, expr.Node]
    on_start: dict[str, expr.Node]
    on_conditions: list[tuple[expr.Node, dict[str, expr.Node]]]
    where: str


@dataclass(frozen=True)
class SpeciesSpec:
    """An intracellular ion species with its concentration model."""

    id: str
    ion: str
    initial: float
    initial_ext: float
    pool: PoolSpec
    where: str


@dataclass(frozen=True)
class CellSpec:
    """A single-compartment cell, in SI.

    Attributes
    ----------
    id, kind : str
        The cell id and its type (``"cell"`` or ``"pointCellCondBased"``).
    area : float or None
        Membrane area (m^2) from the segment (None for point cells).
    capacitance : float
        Total membrane capacitance (F).
    v0, threshold : float
        Initial membrane potential and spike threshold (V).
    densities : tuple of DensitySpec
    species : tuple of SpeciesSpec
    biophysics : str
        The id of the ``biophysicalProperties`` (it appears in quantity paths).
    where : str
    """

    id: str
    kind: str
    area: float | None
    capacitance: float
    v0: float
    threshold: float
    densities: tuple[DensitySpec, ...]
    species: tuple[SpeciesSpec, ...] = ()
    biophysics: str = ""
    where: str = ""
    membrane_children: dict[str, str] = field(default_factory=dict)


def find_element(library: Library, ident: str, *, kinds=None) -> tuple[etree._Element, str] | None:
    """The top-level element with id ``ident`` in the library's files (and its path)."""
    for xml in library.files:
        for element in xml.root:
            if not isinstance(element.tag, str) or element.get("id") != ident:
                continue
            if kinds is None or _type_of(element) in kinds:
                return element, str(xml.path)
    return None


class _Reader:
    def __init__(self, library: Library, element: etree._Element, path: str):
        self.library = library
        self.element = element
        self.path = path

    def value(self, element: etree._Element, name: str, dimension: str, *, default: float | None = None,
              required: bool = True) -> float | None:  # fmt: skip
        text = element.get(name)
        where = _where(element, self.path)
        if text is None:
            if required and default is None:
                raise ModelError(f"{where}: missing attribute {name!r}")
            return default
        value = self.library.units.parse(text, dimension, where=f"{where} {name}").value
        if not math.isfinite(value):
            raise UnitError(f"{where}: {name}={text!r} is not finite")
        return value


def read_cell(library: Library, cell_id: str | None) -> CellSpec:
    """Find and read a single-compartment cell of ``library``.

    Raises
    ------
    ModelError
        No such cell, a missing attribute or channel, a duplicate density id.
    UnsupportedError
        More than one segment, or a membrane mechanism nml2lut does not model.
    UnitError
        A value with the wrong dimension.
    """
    cells = [(el, str(xml.path)) for xml in library.files for el in xml.root
             if isinstance(el.tag, str) and _type_of(el) in CELL_TYPES]  # fmt: skip
    if cell_id is None:
        if len(cells) != 1:
            names = ", ".join(el.get("id", "?") for el, _ in cells) or "none"
            raise ModelError(f"{library.files[-1].path} defines {len(cells)} cells ({names}); pass cell_id")
        element, path = cells[0]
    else:
        found = [(el, p) for el, p in cells if el.get("id") == cell_id]
        if not found:
            other = find_element(library, cell_id)
            if other is not None:
                raise UnsupportedError(
                    f"cell type {_type_of(other[0])}",
                    f"{_where(*other)}: cells of type {_type_of(other[0])!r} are not supported "
                    f"(supported: {', '.join(sorted(CELL_TYPES))})",
                )  # fmt: skip
            names = ", ".join(el.get("id", "?") for el, _ in cells) or "none"
            raise ModelError(f"no cell {cell_id!r} in {library.files[-1].path}; cells: {names}")
        element, path = found[0]
    reader = _Reader(library, element, path)
    if _type_of(element) == "cell":
        return _read_cell(reader)
    return _read_point_cell(reader)


def _read_point_cell(reader: _Reader) -> CellSpec:
    element, path = reader.element, reader.path
    densities = []
    for child in element:
        tag = local_name(child)
        if tag in POPULATION_TYPES:
            densities.append(_density(reader, child))
        elif tag and tag not in _IGNORED:
            raise UnsupportedError(f"<{tag}> in a point cell", f"{_where(child, path)}: unknown child of a point cell")
    _check_unique(densities)
    return CellSpec(
        id=element.get("id", ""), kind=_type_of(element), area=None,
        capacitance=reader.value(element, "C", "capacitance"), v0=reader.value(element, "v0", "voltage"),
        threshold=reader.value(element, "thresh", "voltage"), densities=tuple(densities),
        where=_where(element, path),
    )  # fmt: skip


def _child(element: etree._Element, tag: str, library: Library, path: str) -> tuple[etree._Element | None, str]:
    """A child ``<tag>`` of a cell, inline or referenced by an attribute of the same name."""
    for child in element:
        if local_name(child) == tag:
            return child, path
    ref = element.get(tag)
    if ref:
        found = find_element(library, ref, kinds={tag})
        if found is None:
            raise ModelError(f"{_where(element, path)}: no <{tag}> with id {ref!r}")
        return found
    return None, path


def _read_cell(reader: _Reader) -> CellSpec:
    element, path, library = reader.element, reader.path, reader.library
    where = _where(element, path)
    morphology, morph_path = _child(element, "morphology", library, path)
    if morphology is None:
        raise ModelError(f"{where}: the cell has no <morphology>")
    area = _area(_Reader(library, morphology, morph_path), where)
    biophysics, bio_path = _child(element, "biophysicalProperties", library, path)
    if biophysics is None:
        raise ModelError(f"{where}: the cell has no <biophysicalProperties>")
    bio_reader = _Reader(library, biophysics, bio_path)
    membrane = next((c for c in biophysics if local_name(c) == "membraneProperties"), None)
    if membrane is None:
        raise ModelError(f"{_where(biophysics, bio_path)}: no <membraneProperties>")
    densities, capacitance, v0, threshold = [], [], None, None
    for child in membrane:
        tag = local_name(child)
        if tag in DENSITY_TYPES or tag in POPULATION_TYPES:
            densities.append(_density(bio_reader, child))
        elif tag == "specificCapacitance":
            capacitance.append(bio_reader.value(child, "value", "specificCapacitance"))
        elif tag == "initMembPotential":
            v0 = bio_reader.value(child, "value", "voltage")
        elif tag == "spikeThresh":
            threshold = bio_reader.value(child, "value", "voltage")
        elif tag in _NOT_SUPPORTED:
            raise UnsupportedError(tag, f"{_where(child, bio_path)}: {_NOT_SUPPORTED[tag]} are not supported")
        elif tag and tag not in _IGNORED:
            raise ModelError(f"{_where(child, bio_path)}: unknown membrane property <{tag}>")
    for name, value in (("specificCapacitance", capacitance), ("initMembPotential", v0), ("spikeThresh", threshold)):
        if value is None or value == []:
            raise ModelError(f"{_where(membrane, bio_path)}: no <{name}>")
    _check_unique(densities)
    species = _species(bio_reader, biophysics, area)
    return CellSpec(
        id=element.get("id", ""), kind="cell", area=area, capacitance=sum(capacitance) * area, v0=v0,
        threshold=threshold, densities=tuple(densities), species=species, biophysics=biophysics.get("id", ""),
        where=where,
    )  # fmt: skip


def _area(reader: _Reader, where: str) -> float:
    """Membrane area as the core ``segment`` type computes it: sphere if length 0, else 2 pi r_distal L."""
    segments = [c for c in reader.element if local_name(c) == "segment"]
    if len(segments) != 1:
        raise UnsupportedError(
            "multi-compartment cell",
            f"{where}: the morphology has {len(segments)} segments; only single-compartment cells "
            "(one segment) are supported for now",
        )  # fmt: skip
    segment = segments[0]
    points = {local_name(c): c for c in segment if local_name(c) in ("proximal", "distal")}
    if "distal" not in points or "proximal" not in points:
        raise ModelError(f"{_where(segment, reader.path)}: a single segment needs <proximal> and <distal>")
    # Positions and diameters are plain numbers in um.
    coords = {k: [_micrometres(p, axis, reader.path) for axis in ("x", "y", "z")] for k, p in points.items()}
    radius = _micrometres(points["distal"], "diameter", reader.path) / 2
    length = math.dist(coords["proximal"], coords["distal"])
    area = 4 * radius * radius * 3.14159265 if length == 0 else 2 * radius * 3.14159265 * length
    if not area > 0:
        raise ModelError(f"{_where(segment, reader.path)}: the segment has no membrane area")
    return area


def _micrometres(element: etree._Element, name: str, path: str) -> float:
    text = element.get(name)
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ModelError(f"{_where(element, path)}: {name}={text!r} is not a number (um)") from None
    if not math.isfinite(value) or (name == "diameter" and value < 0):
        raise ModelError(f"{_where(element, path)}: {name}={text!r} is not a valid length")
    return value * 1e-6


def _density(reader: _Reader, element: etree._Element) -> DensitySpec:
    kind = local_name(element)
    where = _where(element, reader.path)
    ident = element.get("id")
    channel = element.get("ionChannel")
    if not ident or not channel:
        raise ModelError(f"{where}: needs an 'id' and an 'ionChannel'")
    value = reader.value
    spec = DensitySpec(ident, kind, channel, element.get("ion"), where)
    if kind in POPULATION_TYPES:
        extra = {"number": value(element, "number", "none")}
        if kind == "channelPopulation":
            extra["erev"] = value(element, "erev", "voltage")
    elif kind == "channelDensityGHK":
        extra = {"permeability": value(element, "permeability", "permeability")}
    else:
        extra = {"cond_density": value(element, "condDensity", "conductanceDensity", default=0.0)}
        if kind in ("channelDensity", "channelDensityVShift"):
            extra["erev"] = value(element, "erev", "voltage")
        if kind == "channelDensityVShift":
            extra["vshift"] = value(element, "vShift", "voltage")
    return DensitySpec(**{**spec.__dict__, **extra})


def _check_unique(densities: list[DensitySpec]) -> None:
    seen: dict[str, DensitySpec] = {}
    for density in densities:
        if density.id in seen:
            raise ModelError(f"{density.where}: duplicate id, first used at {seen[density.id].where}")
        seen[density.id] = density


def _species(reader: _Reader, biophysics: etree._Element, area: float) -> tuple[SpeciesSpec, ...]:
    intracellular = next((c for c in biophysics if local_name(c) == "intracellularProperties"), None)
    if intracellular is None:
        return ()
    out = []
    for child in intracellular:
        tag = local_name(child)
        if tag != "species":
            if tag and tag not in _IGNORED:
                raise ModelError(f"{_where(child, reader.path)}: unknown intracellular property <{tag}>")
            continue
        where = _where(child, reader.path)
        ion = child.get("ion") or child.get("id")
        model_id = child.get("concentrationModel")
        if not ion or not model_id:
            raise ModelError(f"{where}: a species needs an 'ion' and a 'concentrationModel'")
        if any(s.ion == ion for s in out):
            raise UnsupportedError("two pools of one ion", f"{where}: a second species for ion {ion!r}")
        initial = reader.value(child, "initialConcentration", "concentration")
        initial_ext = reader.value(child, "initialExtConcentration", "concentration")
        pool = read_pool(reader.library, model_id, where)
        out.append(SpeciesSpec(child.get("id") or ion, ion, initial, initial_ext, pool, where))
    return tuple(out)


_POOL_REQUIREMENTS = {"iCa", "surfaceArea", "initialConcentration", "initialExtConcentration", "temperature", "t"}


def read_pool(library: Library, model_id: str, where: str) -> PoolSpec:
    """Resolve the concentration model ``model_id`` (core or custom ComponentType) to trees."""
    found = find_element(library, model_id)
    if found is None:
        raise ModelError(f"{where}: no concentration model with id {model_id!r}")
    element, path = found
    kind = _type_of(element)
    pool_where = _where(element, path)
    if not library.types.is_a(kind, BASE_CONCENTRATION_MODEL):
        raise ModelError(f"{pool_where}: {kind!r} is not a concentration model")
    attributes = {k: v for k, v in element.attrib.items() if isinstance(k, str)}
    resolver = library.types.resolve_dynamics(Component(kind, attributes, pool_where), {}, allow_events=True)
    flat = resolver.flat
    if flat.selects:
        raise UnsupportedError("select in a concentration model", f"{pool_where}: DerivedVariable with select")

    def close(tree: expr.Node, what: str) -> expr.Node:
        symbols = {}
        for name in expr.free_symbols(tree):
            if name in flat.states or name in _POOL_REQUIREMENTS:
                continue
            if name in flat.requirements:
                raise UnsupportedError(f"requirement {name}", f"{pool_where}: {what} needs {name!r}")
            symbols[name] = resolver.value_of(name)
        closed = expr.fold_constants(expr.substitute(tree, symbols))
        unknown = expr.free_symbols(closed) - set(flat.states) - _POOL_REQUIREMENTS
        if unknown:
            raise ModelError(f"{pool_where}: {what} uses unknown names {sorted(unknown)}")
        return closed

    derivatives = {}
    for state, tree in flat.derivatives.items():
        if state not in flat.states:
            raise ModelError(f"{pool_where}: TimeDerivative of {state!r}, which is not a StateVariable")
        derivatives[state] = close(tree, f"d{state}/dt")  # also gives the derived variables their dimensions
        dims = {**resolver.dims, **flat.requirements, **flat.states, "t": _time_dim(library)}
        _check_dimension(tree, dims, flat.states[state], pool_where, f"d{state}/dt", per_time=True)
    on_start = {s: close(t, f"the initial value of {s}") for s, t in flat.on_start.items()}
    conditions = [(close(test, "an OnCondition test"), {s: close(v, f"{s} =") for s, v in assign.items()})
                  for test, assign in flat.on_conditions]  # fmt: skip
    for state in ("concentration", "extConcentration"):
        if state not in flat.states:
            raise ModelError(f"{pool_where}: a concentration model needs the state {state!r}")
    return PoolSpec(model_id, kind, dict(flat.states), derivatives, on_start, conditions, pool_where)


def _time_dim(library: Library) -> Dimension:
    return library.units.dimensions["time"]


def _check_dimension(tree, dims, state_dim: Dimension, where: str, what: str, *, per_time: bool) -> None:
    try:
        found = expr.dimension_of(tree, dims)
    except Exception as err:  # ExpressionError/UnitError from a malformed expression
        raise UnitError(f"{where}: {what}: {err}") from err
    time = dims["t"]
    expected = Dimension(*(a - b for a, b in zip(state_dim, time))) if per_time else state_dim
    if found != expected and not (isinstance(tree, expr.Num) and tree.value == 0.0):
        raise UnitError(
            f"{where}: {what} is a {dimension_name(found)}, expected a {dimension_name(expected)}"
        )

