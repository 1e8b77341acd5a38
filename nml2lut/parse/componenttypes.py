"""parse.componenttypes: LEMS ComponentTypes -> expression trees of their exposures.

One generic path serves standard and custom types alike: the NeuroML2 core
rate, variable, time-course, q10 and conductance-scaling types are written out
in `nml2lut.parse.coretypes` in the same form as a custom ``<ComponentType>``
read from a file, and a component's exposure (``r``, ``x``, ``t``, ``q10``,
``factor``) is resolved by substituting its parameters, constants and derived
variables until only requirements (``v``, ``temperature``, ``alpha``...) remain.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from lxml import etree

from .. import expr
from ..errors import ExpressionError, ModelError, Nml2LutError, UnitError, UnsupportedError
from ..units import DIMENSIONLESS, Dimension, UnitRegistry, dimension_name
from .xmlread import local_name

__all__ = ["ComponentTypeDef", "TypeRegistry", "Component", "RedefinedCoreTypeWarning", "DimensionWarning"]


class DimensionWarning(UserWarning):
    """A derived variable's declared dimension differs from its expression's."""


class RedefinedCoreTypeWarning(UserWarning):
    """A document redefines a NeuroML2 core ComponentType; its definition is used."""


@dataclass
class ComponentTypeDef:
    """What nml2lut reads of a LEMS ComponentType (one level, before inheritance)."""

    name: str
    extends: str | None = None
    parameters: dict[str, Dimension] = field(default_factory=dict)
    constants: dict[str, float] = field(default_factory=dict)
    constant_dims: dict[str, Dimension] = field(default_factory=dict)
    requirements: dict[str, Dimension] = field(default_factory=dict)
    exposures: dict[str, Dimension] = field(default_factory=dict)
    derived: dict[str, tuple[expr.Node, Dimension]] = field(default_factory=dict)
    selects: dict[str, tuple[str, str | None, Dimension]] = field(default_factory=dict)
    states: dict[str, Dimension] = field(default_factory=dict)
    derivatives: dict[str, expr.Node] = field(default_factory=dict)
    on_start: dict[str, expr.Node] = field(default_factory=dict)
    on_conditions: list[tuple[expr.Node, dict[str, expr.Node]]] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    where: str = "built-in"

    @property
    def has_dynamics(self) -> bool:
        return bool(self.derived or self.selects or self.states)


@dataclass(frozen=True)
class Component:
    """A component in a file: its type, attribute texts and location."""

    type: str
    attributes: dict[str, str]
    where: str


# Elements of a ComponentType that carry no semantics for a curve.
_IGNORED = {"Text", "Child", "Children", "Attachments", "Property", "EventPort", "InstanceRequirement"}


class TypeRegistry:
    """The ComponentTypes known while reading one set of files."""

    def __init__(self, builtins: dict[str, ComponentTypeDef], units: UnitRegistry):
        self._types = dict(builtins)
        self._builtin = frozenset(builtins)
        self.units = units

    # -- reading ---------------------------------------------------------
    def add_from_xml(self, element: etree._Element, path: str) -> None:
        """Read a ``<ComponentType>`` element and register it."""
        where = f"{path}:{element.sourceline}"
        name = element.get("name")
        if not name:
            raise ModelError(f"{where}: <ComponentType> without a name")
        definition = ComponentTypeDef(name, element.get("extends"), where=f"{where} ComponentType {name!r}")
        for child in element:
            self._read_member(definition, child, path)
        self.add(definition)

    def add(self, definition: ComponentTypeDef) -> None:
        """Register a definition; redefining a core type warns, a clash errors."""
        name = definition.name
        if name in self._builtin:
            warnings.warn(
                f"{definition.where} redefines the NeuroML2 core type {name!r}; its definition is used",
                RedefinedCoreTypeWarning,
                stacklevel=3,
            )
        elif name in self._types and self._types[name].where != definition.where:
            known = self._types[name]
            if _signature(known) != _signature(definition):
                raise ModelError(
                    f"{definition.where}: ComponentType {name!r} is already defined differently "
                    f"at {known.where}"
                )
            return
        self._types[name] = definition

    def _read_member(self, definition: ComponentTypeDef, child: etree._Element, path: str) -> None:
        tag = local_name(child)
        name = child.get("name", "")
        where = f"{path}:{child.sourceline}: {definition.name}.{name}"
        if tag in ("Parameter", "Requirement", "Exposure"):
            dim = self._dimension(child, where)
            {"Parameter": definition.parameters, "Requirement": definition.requirements,
             "Exposure": definition.exposures}[tag][name] = dim  # fmt: skip
        elif tag == "Constant":
            dim = self._dimension(child, where)
            quantity = self.units.parse(child.get("value", ""), dim, where=where)
            definition.constants[name] = quantity.value
            definition.constant_dims[name] = dim
        elif tag == "DerivedParameter":
            dim = self._dimension(child, where)
            definition.derived[name] = (self._expression(child.get("value"), where), dim)
            definition.parameters.pop(name, None)
        elif tag == "Dynamics":
            for member in child:
                self._read_dynamics(definition, member, path)
        elif tag and tag not in _IGNORED:
            definition.unsupported.append(f"<{tag}> in ComponentType {definition.name!r} ({where})")

    def _read_dynamics(self, definition: ComponentTypeDef, member: etree._Element, path: str) -> None:
        tag = local_name(member)
        name = member.get("name", "")
        where = f"{path}:{member.sourceline}: {definition.name}.{name}"
        if tag == "DerivedVariable":
            dim = self._dimension(member, where)
            if member.get("select") is not None:
                definition.selects[name] = (member.get("select"), member.get("reduce"), dim)
            else:
                definition.derived[name] = (self._expression(member.get("value"), where), dim)
        elif tag == "ConditionalDerivedVariable":
            dim = self._dimension(member, where)
            definition.derived[name] = (self._conditional(member, where), dim)
        elif tag == "StateVariable":
            definition.states[name] = self._dimension(member, where)
        elif tag == "TimeDerivative":
            variable = member.get("variable", "")
            definition.derivatives[variable] = self._expression(member.get("value"), f"{where}d{variable}/dt")
        elif tag == "OnStart":
            definition.on_start.update(self._assignments(member, where))
        elif tag == "OnCondition":
            test = member.get("test")
            if test is None:
                raise ModelError(f"{where}: <OnCondition> without a test")
            definition.on_conditions.append((expr.parse(test, where=where), self._assignments(member, where)))
        elif tag:
            definition.unsupported.append(f"<{tag}> in the Dynamics of {definition.name!r} ({where})")

    def _assignments(self, member: etree._Element, where: str) -> dict[str, expr.Node]:
        """The StateAssignments of an OnStart/OnCondition (an EventOut carries no value)."""
        out = {}
        for child in member:
            tag = local_name(child)
            if tag == "StateAssignment":
                variable = child.get("variable", "")
                out[variable] = self._expression(child.get("value"), f"{where} {variable} =")
            elif tag and tag != "EventOut":
                raise UnsupportedError(f"<{tag}>", f"{where}: <{tag}> in <{local_name(member)}>")
        return out

    def _dimension(self, element: etree._Element, where: str) -> Dimension:
        name = element.get("dimension", "none")
        try:
            return self.units.dimensions[name]
        except KeyError:
            raise UnitError(f"{where}: unknown dimension {name!r}") from None

    @staticmethod
    def _expression(text: str | None, where: str) -> expr.Node:
        if text is None:
            raise ModelError(f"{where}: no value expression")
        return expr.parse(text, where=where)

    def _conditional(self, element: etree._Element, where: str) -> expr.Node:
        cases, default = [], None
        for case in element:
            if local_name(case) != "Case":
                continue
            value = self._expression(case.get("value"), where)
            condition = case.get("condition")
            if condition is None:
                if default is not None:
                    raise ModelError(f"{where}: more than one Case without a condition")
                default = value
            else:
                cases.append((expr.parse(condition, where=where), value))
        if not cases and default is None:
            raise ModelError(f"{where}: ConditionalDerivedVariable without Cases")
        if default is None:
            # Files write exhaustive conditions (x .neq. 0 / x .eq. 0) without a
            # default; the last case serves as one, as in code generated for NEURON.
            (_, default), cases = cases[-1], cases[:-1]
        return expr.Cond(tuple(cases), default)

    # -- querying --------------------------------------------------------
    def __contains__(self, name: str) -> bool:
        return name in self._types

    def chain(self, name: str, where: str = "", *, stop_at: frozenset[str] = frozenset()) -> list[ComponentTypeDef]:
        """The definitions from ``name`` up its ``extends`` chain (ending before any name in ``stop_at``)."""
        chain, seen = [], set()
        current: str | None = name
        while current is not None and current not in stop_at:
            if current in seen:
                raise ModelError(f"{where}: ComponentType {name!r} extends itself through {current!r}")
            seen.add(current)
            try:
                definition = self._types[current]
            except KeyError:
                context = f" (extended by {chain[-1].name!r})" if chain else ""
                raise ModelError(f"{where}: unknown ComponentType {current!r}{context}") from None
            chain.append(definition)
            current = definition.extends
        return chain

    def is_a(self, name: str, base: str) -> bool:
        """Whether type ``name`` is ``base`` or extends it.

        A chain may end in a type nml2lut has no definition of (a cell or
        gate core type, say); that name still counts as an ancestor.
        """
        current: str | None = name
        seen = set()
        while current is not None and current not in seen:
            if current == base:
                return True
            seen.add(current)
            definition = self._types.get(current)
            current = definition.extends if definition is not None else None
        return False

    def flatten(self, name: str, where: str = "", *, stop_at: frozenset[str] = frozenset()) -> ComponentTypeDef:
        """One definition merging the ``extends`` chain, the most derived winning."""
        flat = ComponentTypeDef(name, where=self._types[name].where if name in self else where)
        for definition in reversed(self.chain(name, where, stop_at=stop_at)):
            flat.parameters.update(definition.parameters)
            flat.constants.update(definition.constants)
            flat.constant_dims.update(definition.constant_dims)
            flat.requirements.update(definition.requirements)
            flat.exposures.update(definition.exposures)
            flat.derived.update(definition.derived)
            flat.selects.update(definition.selects)
            flat.states.update(definition.states)
            flat.derivatives.update(definition.derivatives)
            flat.on_start.update(definition.on_start)
            flat.on_conditions.extend(definition.on_conditions)
            flat.unsupported.extend(definition.unsupported)
        for shadowed in set(flat.derived) & set(flat.parameters):
            del flat.parameters[shadowed]
        return flat

    # -- resolving -------------------------------------------------------
    def resolve(self, component: Component, exposure: str, expected: Dimension) -> expr.Node:
        """The tree of ``component``'s ``exposure``, over its requirements only.

        Raises
        ------
        ModelError
            Unknown type, missing parameter, or no value for the exposure.
        UnitError
            A parameter with the wrong unit, or an expression whose dimension
            differs from the one declared.
        UnsupportedError
            The type uses a construct nml2lut cannot tabulate (state variables,
            ``select``...).
        """
        flat = self.flatten(component.type, component.where)
        if flat.selects or flat.states:
            what = "StateVariable" if flat.states else "DerivedVariable with select"
            raise UnsupportedError(what, f"{component.where}: {what} in {component.type!r}")
        resolver = self._resolver(flat, component)
        tree = resolver.value_of(exposure)
        got = resolver.dims.get(exposure, DIMENSIONLESS)
        if got != expected:
            raise UnitError(
                f"{component.where}: {exposure!r} of type {component.type!r} is a {dimension_name(got)}, "
                f"expected a {dimension_name(expected)}"
            )
        return tree

    def resolve_dynamics(
        self, component: Component, selected: dict[str, expr.Node], *, stop_at: frozenset[str] = frozenset(),
        parameters: dict[str, Dimension] | None = None, allow_events: bool = False,
    ) -> _Resolver:  # fmt: skip
        """A resolver of a custom type with Dynamics of its own (a custom gate, say).

        ``selected`` gives the value of each ``select`` path the type's
        DerivedVariables use (``"forwardRate/r"``...); state variables stay
        symbols; ``parameters`` adds those of base types nml2lut knows
        structurally (``instances``); ``allow_events`` admits OnConditions
        (the caller interprets ``flat.on_conditions``).
        """
        flat = self.flatten(component.type, component.where, stop_at=stop_at)
        if flat.on_conditions and not allow_events:
            raise UnsupportedError("OnCondition", f"{component.where}: <OnCondition> in the Dynamics of {component.type!r}")
        flat.parameters = {**(parameters or {}), **flat.parameters}
        resolver = self._resolver(flat, component)
        for name, (path, _reduce, dim) in flat.selects.items():
            if path not in selected:
                raise UnsupportedError(
                    f"select {path}", f"{component.where}: {component.type}.{name} selects {path!r}"
                )
            resolver.values[name] = selected[path]
            resolver.dims[name] = dim
        for name, dim in flat.states.items():
            resolver.values[name] = expr.Sym(name)
            resolver.dims[name] = dim
        return resolver

    def _resolver(self, flat: ComponentTypeDef, component: Component) -> _Resolver:
        if flat.unsupported:
            raise UnsupportedError(flat.unsupported[0].split(" ")[0], f"{component.where}: {flat.unsupported[0]}")
        values: dict[str, expr.Node] = {}
        dims: dict[str, Dimension] = dict(flat.requirements)
        for name, dim in flat.parameters.items():
            text = component.attributes.get(name)
            if text is None:
                raise ModelError(f"{component.where}: parameter {name!r} of type {component.type!r} has no value")
            values[name] = expr.Num(self.units.parse(text, dim, where=f"{component.where} {name}").value)
            dims[name] = dim
        for name, value in flat.constants.items():
            values[name] = expr.Num(value)
            dims[name] = flat.constant_dims[name]
        # Derived variables get their dimension when resolved (see _Resolver).
        dims.update({name: DIMENSIONLESS for name in flat.derived if name not in dims})
        return _Resolver(flat, values, dims, component.where)


class _Resolver:
    """Substitutes derived variables into one another, depth first, with cycle detection."""

    def __init__(self, flat: ComponentTypeDef, values: dict[str, expr.Node], dims: dict[str, Dimension], where: str):
        self.flat = flat
        self.values = values
        self.dims = dims
        self.where = where
        self.active: list[str] = []

    def value_of(self, name: str) -> expr.Node:
        if name in self.values:
            return self.values[name]
        if name in self.flat.requirements:
            return expr.Sym(name)
        if name not in self.flat.derived:
            raise ModelError(f"{self.where}: type {self.flat.name!r} gives no value for {name!r}")
        if name in self.active:
            raise ModelError(f"{self.where}: {' -> '.join([*self.active, name])} is circular")
        self.active.append(name)
        tree, declared = self.flat.derived[name]
        where = f"{self.where}: {self.flat.name}.{name}"
        for symbol in expr.free_symbols(tree):
            if symbol not in self.dims:
                raise ExpressionError(f"{where}: unknown name {symbol!r}")
        # Dependencies first, so their dimensions are the computed ones.
        symbols = {s: self.value_of(s) for s in sorted(expr.free_symbols(tree))}
        try:
            found = expr.dimension_of(tree, self.dims)
        except ExpressionError as err:
            raise ExpressionError(f"{where}: {err}") from err
        except UnitError as err:
            raise UnitError(f"{where}: {err}") from err
        if found != declared and not _is_zero(tree):
            # jLEMS computes with the expression and ignores a wrong declaration
            # (files in the wild declare dimension="none" for times); so do we.
            warnings.warn(
                f"{where}: expression is a {dimension_name(found)} but is declared {dimension_name(declared)}; "
                "the expression's dimension is used",
                DimensionWarning,
                stacklevel=4,
            )
        self.dims[name] = found if not _is_zero(tree) else declared
        self.active.pop()
        self.values[name] = expr.fold_constants(expr.substitute(tree, symbols))
        return self.values[name]


def _is_zero(tree: expr.Node) -> bool:
    return isinstance(tree, expr.Num) and tree.value == 0.0


def _signature(definition: ComponentTypeDef) -> tuple:
    return (
        definition.extends,
        sorted(definition.parameters.items()),
        sorted(definition.constants.items()),
        sorted(definition.requirements.items()),
        sorted((k, repr(v)) for k, v in definition.derived.items()),
    )


def safe_resolve(registry: TypeRegistry, component: Component, exposure: str, expected: Dimension) -> expr.Node:
    """`TypeRegistry.resolve`, with any non-nml2lut failure turned into a ModelError."""
    try:
        return registry.resolve(component, exposure, expected)
    except Nml2LutError:
        raise
    except RecursionError as err:
        raise ModelError(f"{component.where}: expression nesting too deep") from err
