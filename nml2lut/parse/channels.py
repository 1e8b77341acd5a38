"""parse.channels: NeuroML2 ion-channel elements -> `nml2lut.model.Channel`.

Reads the structure the core gate and channel types define (which child is the
forward rate, how q10 settings combine, where inf and tau come from for each
gate kind) and hands every rate, variable, time course and scaling to the
generic ComponentType resolver.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from .. import expr
from ..errors import ChannelNotFoundError, ModelError, UnitError, UnsupportedError
from ..model import Channel, Gate, SubGate
from ..units import DIMENSIONS, Unit, UnitRegistry
from .componenttypes import Component, TypeRegistry, safe_resolve
from .coretypes import (
    BASE_Q10,
    BASE_RATE,
    BASE_SCALING,
    BASE_TIME,
    BASE_VARIABLE,
    CHANNEL_TYPES,
    GATE_TYPES,
    core_types,
)
from .customgates import base_gate_type, custom_gate
from .kinetic import IgnoredByCoreTypesWarning, kinetic_gate
from .xmlread import MAX_BYTES, XmlFile, local_name, read_with_includes
from .xmlread import component_type as _type_of
from .xmlread import describe as _describe

__all__ = ["ChannelSource", "Library", "read_library", "CUSTOM_GATE", "CUSTOM_CHANNEL"]

CUSTOM_GATE = "custom gate ComponentType"
CUSTOM_CHANNEL = "custom channel ComponentType"

# What each gate kind reads from its children (NeuroML2 core types, Channels.xml).
_USES_RATES = {"gateHHrates", "gateHHratesTau", "gateHHratesInf", "gateHHratesTauInf"}
_USES_TIME = {"gateHHtauInf", "gateHHratesTau", "gateHHratesTauInf"}
_USES_STEADY = {"gateHHtauInf", "gateHHratesInf", "gateHHratesTauInf", "gateHHInstantaneous"}
_ROLES = {
    "forwardRate": (BASE_RATE, "r", "per_time"),
    "reverseRate": (BASE_RATE, "r", "per_time"),
    "timeCourse": (BASE_TIME, "t", "time"),
    "steadyState": (BASE_VARIABLE, "x", "none"),
}
_SKIPPED_CHILDREN = {"notes", "annotation", "property"}
_STRUCTURAL_GATES = frozenset({*GATE_TYPES, "gate", "baseGate"})
# Requirements a rate may have: run-time inputs, load-time values, and the gate's own variables.
_GATE_SYMBOLS = ("alpha", "beta", "rateScale")
_KNOWN_REQUIREMENTS = {"v", "temperature", "caConc", "vShift", *_GATE_SYMBOLS}


@dataclass(frozen=True)
class ChannelSource:
    """A channel element found in a file, before it is interpreted."""

    id: str
    element: etree._Element
    path: str

    @property
    def line(self) -> int | None:
        return self.element.sourceline

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}: channel {self.id!r}"


class Library:
    """The channels and ComponentTypes of a file and everything it includes.

    Parameters
    ----------
    files : list of XmlFile
        As returned by `nml2lut.parse.xmlread.read_with_includes`.
    """

    def __init__(self, files: list[XmlFile]):
        self.files = files
        self.units = UnitRegistry()
        self.types = TypeRegistry(core_types(), self.units)
        self.sources: list[ChannelSource] = []
        for xml in files:
            self._read_definitions(xml)
        for xml in files:
            self._find_channels(xml)

    def _read_definitions(self, xml: XmlFile) -> None:
        path = str(xml.path)
        for element in xml.root:
            tag = local_name(element)
            if tag == "Dimension":
                name = element.get("name", "")
                self.units.dimensions[name] = self._dimension_from(element)
            elif tag == "Unit":
                self._add_unit(element, path)
            elif tag == "ComponentType":
                self.types.add_from_xml(element, path)

    @staticmethod
    def _dimension_from(element: etree._Element):
        from ..units import Dimension

        try:
            return Dimension(*(int(element.get(k, "0")) for k in Dimension._fields))
        except ValueError as err:
            raise UnitError(f"line {element.sourceline}: bad <Dimension>: {err}") from err

    def _add_unit(self, element: etree._Element, path: str) -> None:
        where = _describe(element, path)
        dim_name = element.get("dimension", "")
        if dim_name not in self.units.dimensions:
            raise UnitError(f"{where}: unknown dimension {dim_name!r}")
        try:
            unit = Unit(
                element.get("symbol", ""),
                self.units.dimensions[dim_name],
                int(element.get("power", "0")),
                float(element.get("scale", "1")),
                float(element.get("offset", "0")),
            )
        except ValueError as err:
            raise UnitError(f"{where}: bad <Unit>: {err}") from err
        self.units.add_unit(unit)

    def _is_channel(self, element: etree._Element) -> bool:
        kind = _type_of(element)
        if kind in CHANNEL_TYPES:
            return True
        return kind in self.types and any(self.types.is_a(kind, base) for base in CHANNEL_TYPES)

    def _find_channels(self, xml: XmlFile) -> None:
        seen: dict[str, ChannelSource] = {s.id: s for s in self.sources}
        for element in xml.root:
            if not self._is_channel(element):
                continue
            source = ChannelSource(element.get("id", ""), element, str(xml.path))
            if not source.id:
                raise ModelError(f"{_describe(element, source.path)}: channel without an id")
            if source.id in seen:
                raise ModelError(f"{source.where}: duplicate channel id, first defined at {seen[source.id].where}")
            seen[source.id] = source
            self.sources.append(source)

    # -- public ----------------------------------------------------------
    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.sources]

    def source(self, channel_id: str | None) -> ChannelSource:
        """The channel with this id; with None, the only channel there is."""
        if channel_id is None:
            if len(self.sources) == 1:
                return self.sources[0]
            names = ", ".join(self.ids) or "none"
            raise ChannelNotFoundError(
                f"{self.files[-1].path} defines {len(self.sources)} channels ({names}); pass channel_id"
            )
        for source in self.sources:
            if source.id == channel_id:
                return source
        raise ChannelNotFoundError(
            f"no channel {channel_id!r} in {self.files[-1].path}; channels: {', '.join(self.ids) or 'none'}"
        )

    def build(self, source: ChannelSource) -> Channel:
        """Interpret one channel element (see `build_channel`)."""
        return _ChannelBuilder(self, source).build()


def read_library(path: str | os.PathLike, *, max_bytes: int = MAX_BYTES) -> Library:
    """Read a NeuroML or LEMS file with its includes and find its channels."""
    return Library(read_with_includes(Path(path), max_bytes=max_bytes))


class _ChannelBuilder:
    def __init__(self, library: Library, source: ChannelSource):
        self.library = library
        self.types = library.types
        self.source = source
        self.path = source.path

    def build(self) -> Channel:
        element = self.source.element
        kind = _type_of(element)
        if kind not in CHANNEL_TYPES:
            raise UnsupportedError(CUSTOM_CHANNEL, f"{self.source.where}: custom channel ComponentType {kind!r}")
        conductance = None
        if element.get("conductance") is not None:
            where = f"{self.source.where} conductance"
            conductance = self.library.units.parse(element.get("conductance"), "conductance", where=where).value
        vshift = None
        if kind == "ionChannelVShift":
            text = element.get("vShift")
            if text is None:
                raise ModelError(f"{self.source.where}: ionChannelVShift without vShift")
            vshift = self.library.units.parse(text, "voltage", where=f"{self.source.where} vShift").value
        gates, scalings = [], []
        for child in element:
            tag = local_name(child)
            if not tag or tag in _SKIPPED_CHILDREN:
                continue
            child_type = _type_of(child)
            if tag == "gate" or child_type in GATE_TYPES or self._is_gate(child_type):
                gates.append(self._gate(child))
            elif child_type in self.types and self.types.is_a(child_type, BASE_SCALING):
                scalings.append(self._component(child, "factor", "none"))
            elif child_type not in self.types:
                raise ModelError(f"{_describe(child, self.path)}: unknown element: no ComponentType {child_type!r}")
            else:
                raise UnsupportedError(child_type, f"{_describe(child, self.path)}: unexpected element in a channel")
        if kind == "ionChannelPassive" and gates:
            raise ModelError(f"{self.source.where}: ionChannelPassive cannot have gates")
        if kind == "ionChannelKS" and scalings:
            warnings.warn(
                f"{self.source.where}: conductance scaling of an ionChannelKS is ignored: in the NeuroML2 core "
                "types its open fraction does not include it",
                IgnoredByCoreTypesWarning,
                stacklevel=3,
            )
            scalings = []
        self._check_unique([g.id for g in gates], "gate")
        scale = _product(scalings)
        return Channel(
            id=self.source.id,
            kind="gated" if gates or scalings else "passive",
            conductance=conductance,
            species=element.get("species"),
            gates=tuple(gates),
            conductance_scale=scale,
            source=self.path,
            line=self.source.line,
            vshift=vshift,
        )

    def _is_gate(self, kind: str) -> bool:
        return any(self.types.is_a(kind, base) for base in (*GATE_TYPES, "gate", "baseGate"))

    def _check_unique(self, ids: list[str], what: str) -> None:
        seen = set()
        for ident in ids:
            if ident in seen:
                raise ModelError(f"{self.source.where}: duplicate {what} id {ident!r}")
            seen.add(ident)

    # -- components ------------------------------------------------------
    def _component(self, element: etree._Element, exposure: str, dimension: str, base: str | None = None) -> expr.Node:
        where = _describe(element, self.path)
        kind = _type_of(element)
        if kind not in self.types:
            raise ModelError(f"{where}: unknown ComponentType {kind!r}")
        if base is not None and not self.types.is_a(kind, base):
            raise ModelError(f"{where}: type {kind!r} is not a {base}")
        attributes = {k: v for k, v in element.attrib.items() if isinstance(k, str)}
        tree = safe_resolve(self.types, Component(kind, attributes, where), exposure, DIMENSIONS[dimension])
        for name in expr.free_symbols(tree) - _KNOWN_REQUIREMENTS:
            raise UnsupportedError(f"requirement {name}", f"{where}: requires {name!r}, which nml2lut cannot provide")
        return tree

    def _children(self, gate: etree._Element, kind: str) -> dict[str, list[etree._Element]]:
        found: dict[str, list[etree._Element]] = {}
        for child in gate:
            tag = local_name(child)
            if not tag or tag in _SKIPPED_CHILDREN:
                continue
            if tag not in (*_ROLES, "q10Settings", "subGate"):
                raise UnsupportedError(tag, f"{_describe(child, self.path)}: unexpected element in a {kind}")
            found.setdefault(tag, []).append(child)
        for role, elements in found.items():
            if role in _ROLES and len(elements) > 1:
                raise ModelError(f"{_describe(elements[1], self.path)}: more than one <{role}>")
        return found

    def _one(self, found, role: str, gate_el, kind: str, needed: bool) -> etree._Element | None:
        elements = found.get(role)
        if needed and not elements:
            raise ModelError(f"{_describe(gate_el, self.path)}: a {kind} needs a <{role}>")
        if not needed and elements:
            raise ModelError(f"{_describe(elements[0], self.path)}: a {kind} has no <{role}>")
        return elements[0] if elements else None

    def _role(self, element, role: str) -> expr.Node:
        base, exposure, dimension = _ROLES[role]
        return self._component(element, exposure, dimension, base)

    def _rate_scale(self, found) -> expr.Node:
        return _product([self._component(q, "q10", "none", BASE_Q10) for q in found.get("q10Settings", [])])

    # -- gates -----------------------------------------------------------
    def _gate(self, element: etree._Element) -> Gate:
        kind = _type_of(element)
        where = _describe(element, self.path)
        gate_id = element.get("id")
        if not gate_id:
            raise ModelError(f"{where}: gate without an id")
        instances = _instances(element, where)
        if kind == "gateKS":
            return kinetic_gate(self, element, gate_id, instances, where)
        if kind not in GATE_TYPES:
            if not self._is_gate(kind):
                raise UnsupportedError(kind, f"{where}: unknown gate type {kind!r}")
            base = base_gate_type(self.types, kind)
            if self.types.flatten(kind, where, stop_at=_STRUCTURAL_GATES).has_dynamics or base is None:
                return custom_gate(self, element, kind, gate_id, instances, where)
            kind = base  # a new name for a core gate type, nothing more
        found = self._children(element, kind)
        if kind == "gateFractional":
            return self._fractional(element, found, gate_id, instances, where)
        if "subGate" in found:
            raise ModelError(f"{_describe(found['subGate'][0], self.path)}: only a gateFractional has subGates")
        if kind == "gateHHInstantaneous" and "q10Settings" in found:
            raise ModelError(f"{where}: a gateHHInstantaneous has no <q10Settings>")
        symbols: dict[str, expr.Node] = {"rateScale": self._rate_scale(found)}
        if kind in _USES_RATES:
            symbols["alpha"] = self._role(self._one(found, "forwardRate", element, kind, True), "forwardRate")
            symbols["beta"] = self._role(self._one(found, "reverseRate", element, kind, True), "reverseRate")
        else:
            self._one(found, "forwardRate", element, kind, False)
            self._one(found, "reverseRate", element, kind, False)
        steady = self._one(found, "steadyState", element, kind, kind in _USES_STEADY)
        course = self._one(found, "timeCourse", element, kind, kind in _USES_TIME)
        symbols = _close_symbols(symbols, where)
        alpha, beta, scale = (expr.Sym("alpha"), expr.Sym("beta"), symbols["rateScale"])
        inf = self._role(steady, "steadyState") if steady is not None else _op("/", alpha, _op("+", alpha, beta))
        if kind == "gateHHInstantaneous":
            tau = None
        elif course is not None:
            tau = _op("/", self._role(course, "timeCourse"), scale)
        else:
            tau = _op("/", expr.Num(1.0), _op("*", _op("+", alpha, beta), scale))
        stale = []
        for curve, child in (("inf", steady), ("tau", course)):
            read = expr.free_symbols(inf if curve == "inf" else tau) if child is not None else set()
            if kind != "gateHHInstantaneous" and read & {"alpha", "beta"}:
                stale.append((curve, "v" in read))
        inf, tau = (None if t is None else _with_gate_symbols(t, symbols, where) for t in (inf, tau))
        return Gate(
            id=gate_id,
            kind="instantaneous" if tau is None else "dynamic",
            instances=instances,
            inf=inf,
            tau=tau,
            alpha=symbols.get("alpha"),
            beta=symbols.get("beta"),
            element=where,
            stale_rates=tuple(stale),
        )

    def _fractional(self, element, found, gate_id: str, instances: int, where: str) -> Gate:
        for role in _ROLES:
            self._one(found, role, element, "gateFractional", False)
        scale = self._rate_scale(found)
        subgates = []
        for sub in found.get("subGate", []):
            sub_where = _describe(sub, self.path)
            sub_found = self._children(sub, "subGate")
            if "subGate" in sub_found or "q10Settings" in sub_found:
                raise ModelError(f"{sub_where}: a subGate has only a steadyState and a timeCourse")
            steady = self._role(self._one(sub_found, "steadyState", sub, "subGate", True), "steadyState")
            course = self._role(self._one(sub_found, "timeCourse", sub, "subGate", True), "timeCourse")
            symbols = {"rateScale": scale}
            fraction = sub.get("fractionalConductance")
            if fraction is None:
                raise ModelError(f"{sub_where}: subGate without fractionalConductance")
            subgates.append(
                SubGate(
                    id=sub.get("id") or f"sub{len(subgates)}",
                    fraction=self.library.units.parse(fraction, "none", where=f"{sub_where} fractionalConductance").value,
                    inf=_with_gate_symbols(steady, symbols, sub_where),
                    tau=_with_gate_symbols(_op("/", course, scale), symbols, sub_where),
                )
            )
        if not subgates:
            raise ModelError(f"{where}: a gateFractional needs at least one <subGate>")
        self._check_unique([s.id for s in subgates], f"subGate of gate {gate_id!r}")
        return Gate(id=gate_id, kind="fractional", instances=instances, subgates=tuple(subgates), element=where)


def _op(operator: str, left: expr.Node, right: expr.Node) -> expr.Node:
    return expr.Binary(operator, left, right)


def _instances(element: etree._Element, where: str) -> int:
    text = element.get("instances")
    if text is None:
        raise ModelError(f"{where}: gate without instances")
    try:
        value = float(text)
    except ValueError:
        raise ModelError(f"{where}: instances={text!r} is not a number") from None
    if value != int(value) or value < 1 or value > 100:
        raise ModelError(f"{where}: instances={text!r} must be a whole number from 1 to 100")
    return int(value)


def _product(trees: list[expr.Node]) -> expr.Node:
    result: expr.Node = expr.Num(1.0)
    for tree in trees:
        result = tree if isinstance(result, expr.Num) and result.value == 1.0 else _op("*", result, tree)
    return expr.fold_constants(result)


def _close_symbols(symbols: dict[str, expr.Node], where: str) -> dict[str, expr.Node]:
    """Substitute the gate's symbols into one another until none refers to another."""
    for _ in range(len(_GATE_SYMBOLS) + 1):
        pending = {k: t for k, t in symbols.items() if expr.free_symbols(t) & set(_GATE_SYMBOLS)}
        if not pending:
            return symbols
        symbols = {k: expr.substitute(t, {s: symbols[s] for s in expr.free_symbols(t) & symbols.keys()})
                   for k, t in symbols.items()}  # fmt: skip
        missing = {s for t in symbols.values() for s in expr.free_symbols(t) & set(_GATE_SYMBOLS)} - symbols.keys()
        if missing:
            raise ModelError(f"{where}: a rate requires {sorted(missing)}, which this gate does not define")
    raise ModelError(f"{where}: the gate's rates require one another in a circle")


def _with_gate_symbols(tree: expr.Node, symbols: dict[str, expr.Node], where: str) -> expr.Node:
    """``tree`` with rateScale substituted; alpha/beta stay symbols if the gate defines them."""
    needed = expr.free_symbols(tree) & set(_GATE_SYMBOLS)
    missing = needed - symbols.keys()
    if missing:
        raise ModelError(f"{where}: requires {sorted(missing)}, which this gate does not define")
    return expr.fold_constants(expr.substitute(tree, {"rateScale": symbols["rateScale"]}))
