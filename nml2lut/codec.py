"""codec: nml2lut's dataclasses (channel model, expression trees, tables) <-> strict JSON-compatible data.

Generic: every dataclass and enum reachable from the annotations of
`nml2lut.LoadedChannel` is written field by field (`dataclasses.fields`),
so fields and types added later need no change here.  Expression nodes are
nested lists (``["Binary", "+", ["Sym", "v"], ["Num", 1.0]]``), other
dataclasses objects with a ``"$type"``.  Reading is strict, for untrusted
files: only those types, only their fields, values checked against the
field annotations, constructors' own checks applied; numpy arrays travel
separately (``{"$npz": key}``).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import math
import types
import typing
from typing import Any

import numpy as np

from .errors import Nml2LutError

__all__ = ["StoreError", "encode", "decode", "dumps", "loads", "node_types"]


class StoreError(Nml2LutError, ValueError):
    """A stored channel cannot be written or read back (missing, corrupt, or not from nml2lut)."""


# ---------------------------------------------------------------- the types that may be stored
@functools.cache
def _registry() -> dict[str, type]:
    """The dataclasses and enums a converted channel can hold, by class name.

    Found by following the annotations of `nml2lut.LoadedChannel`'s stored
    fields (and the expression nodes), so a type added to the model or the
    tables later is storable without a change here.
    """
    from . import expr
    from .channel import LoadedChannel

    found: dict[str, type] = {}
    pending = [hint for name, hint in _hints(LoadedChannel).items() if name != "code"]
    pending += [obj for obj in vars(expr).values() if dataclasses.is_dataclass(obj) and obj.__module__ == expr.__name__]
    while pending:
        hint = pending.pop()
        pending.extend(typing.get_args(hint))
        storable = isinstance(hint, type) and (dataclasses.is_dataclass(hint) or issubclass(hint, enum.Enum))
        if not storable or found.get(hint.__name__) is hint:
            continue
        if hint.__name__ in found:
            raise StoreError(f"two storable classes are called {hint.__name__!r}")
        found[hint.__name__] = hint
        if dataclasses.is_dataclass(hint):
            pending.extend(_hints(hint).values())
    return found


@functools.cache
def _node_types() -> tuple[type, ...]:
    """The expression-tree node classes (the dataclasses of `nml2lut.expr`), written as lists."""
    from . import expr

    return tuple(t for t in _registry().values() if t.__module__ == expr.__name__ and dataclasses.is_dataclass(t))


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that cannot be resolved is not checked
        return {}


def _init_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.init]


# ---------------------------------------------------------------- encoding
def encode(obj: Any, arrays: dict[str, np.ndarray] | None = None, path: str = "") -> Any:
    """``obj`` as JSON-compatible data; numpy arrays go to ``arrays`` (keyed by field path).

    Expression nodes become nested lists, ``["Binary", "+", ["Sym", "v"],
    ["Num", 1.0]]`` (class name, then the fields in order); other dataclasses
    ``{"$type": name, field: value...}``; tuples lists; dicts
    ``{"$dict": [[key, value]...]}``; non-finite floats ``{"$float": "nan"}``;
    arrays ``{"$npz": key}``.

    Raises
    ------
    StoreError
        A value of a type that cannot be stored (the message names the field).
    """
    where = path or "value"
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(obj, enum.Enum):
        return {"$enum": type(obj).__name__, "name": obj.name}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        cls = type(obj)
        if _registry().get(cls.__name__) is not cls:
            raise StoreError(f"{where}: {cls.__name__} is not a storable nml2lut class")
        fields = [
            (f.name, encode(getattr(obj, f.name), arrays, f"{path}.{f.name}".lstrip("."))) for f in _init_fields(cls)
        ]
        if cls in _node_types():
            return [cls.__name__, *(value for _, value in fields)]
        return {"$type": cls.__name__, **dict(fields)}
    if isinstance(obj, tuple):
        return [encode(x, arrays, f"{path}[{i}]") for i, x in enumerate(obj)]
    if isinstance(obj, list):
        return {"$list": [encode(x, arrays, f"{path}[{i}]") for i, x in enumerate(obj)]}
    if isinstance(obj, frozenset):
        items = [encode(x, arrays, f"{path}{{}}") for x in obj]
        return {"$frozenset": sorted(items, key=lambda x: json.dumps(x, sort_keys=True))}
    if isinstance(obj, dict):
        return {"$dict": [[encode(k, arrays, path), encode(v, arrays, f"{path}[{k!r}]")] for k, v in obj.items()]}
    if isinstance(obj, np.ndarray) and arrays is not None and obj.dtype.kind in "biuf":
        key = path or "array"
        if key in arrays:
            raise StoreError(f"two arrays stored under {key!r}")
        arrays[key] = np.ascontiguousarray(obj)
        return {"$npz": key}
    raise StoreError(f"{where}: cannot store a value of type {type(obj).__name__}")


# ---------------------------------------------------------------- decoding
def decode(data: Any, arrays: dict[str, np.ndarray] | None = None, path: str = "", hint: Any = Any) -> Any:
    """The object `encode` made ``data`` from, checked against the annotation ``hint``; for untrusted input.

    Dataclass fields are decoded against their own annotations, so a list
    is an expression node where a node is due and a tuple elsewhere.

    Raises
    ------
    StoreError
        Unknown type or field, a value not matching its annotation, a
        missing array, or a constructor refusing the values.
    """
    where = path or "value"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object:
        return _decode_any(data, arrays, path)
    if origin is typing.Literal:
        if any(type(data) is type(a) and data == a for a in args):
            return data
        raise StoreError(f"{where}: expected one of {list(args)}, found {data!r}")
    if origin is typing.Union or origin is types.UnionType:
        return _decode_union(data, args, arrays, path)
    if hint is None or hint is type(None):
        if data is None:
            return None
    elif isinstance(hint, type) and hint in _node_types():
        return _decode_node(data, arrays, path, (hint,))
    elif origin is tuple and isinstance(data, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(decode(x, arrays, f"{path}[{i}]", args[0]) for i, x in enumerate(data))
        if not args:
            return tuple(decode(x, arrays, f"{path}[{i}]") for i, x in enumerate(data))
        if len(args) == len(data):
            return tuple(decode(x, arrays, f"{path}[{i}]", a) for i, (x, a) in enumerate(zip(data, args, strict=True)))
    elif origin in (dict, list, frozenset) or (isinstance(hint, type) and issubclass(hint, enum.Enum)):
        value = _decode_any(data, arrays, path, args)
        if isinstance(value, origin or hint):
            return value
    elif hint is float:
        value = _decode_any(data, arrays, path)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint in (int, str, bool):
        if type(data) is hint:
            return data
    elif isinstance(hint, type):
        value = _decode_any(data, arrays, path)
        if isinstance(value, hint):
            return value
    else:  # a parametrised generic of another kind: decoded, not checked
        return _decode_any(data, arrays, path)
    raise StoreError(f"{where}: expected {_hint_name(hint)}, found {_json_kind(data)}")


def _hint_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _json_kind(data: Any) -> str:
    if isinstance(data, dict) and isinstance(data.get("$type"), str):
        return data["$type"]
    if isinstance(data, list) and data and isinstance(data[0], str):
        return f"list starting {data[0]!r}"
    return type(data).__name__


def _decode_union(data: Any, arms: tuple, arrays, path: str) -> Any:
    nodes = tuple(a for a in arms if a in _node_types())
    if nodes and isinstance(data, list) and data and isinstance(data[0], str) and data[0] in _registry():
        return _decode_node(data, arrays, path, nodes)
    errors = []
    for arm in arms:
        try:
            return decode(data, arrays, path, arm)
        except StoreError as err:
            errors.append(err)
    if nodes and isinstance(data, list):
        return _decode_node(data, arrays, path, nodes)  # raises, saying which nodes are allowed
    real = [err for arm, err in zip(arms, errors, strict=True) if arm is not type(None)]
    if len(real) == 1:  # X | None: the error of X says most
        raise real[0]
    raise StoreError(f"{path or 'value'}: expected {' | '.join(map(_hint_name, arms))}, found {_json_kind(data)}")


def _decode_node(data: Any, arrays, path: str, allowed: tuple[type, ...]) -> Any:
    where = path or "value"
    cls = _registry().get(data[0]) if isinstance(data, list) and data and isinstance(data[0], str) else None
    if cls is None or cls not in allowed:
        raise StoreError(f"{where}: expected an expression node ({', '.join(c.__name__ for c in allowed)}), "
                         f"found {_json_kind(data)}")  # fmt: skip
    fields = _init_fields(cls)
    required = sum(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING for f in fields)
    if not required <= len(data) - 1 <= len(fields):
        raise StoreError(f"{where}: a {cls.__name__} node has {len(fields)} fields, found {len(data) - 1}")
    hints = _hints(cls)
    values = {f.name: decode(x, arrays, f"{path}.{f.name}".lstrip("."), hints.get(f.name, Any))
              for f, x in zip(fields, data[1:], strict=False)}  # fmt: skip
    return _construct(cls, values, where)


def _decode_dataclass(data: dict, arrays, path: str) -> Any:
    where = path or "value"
    cls = _registry().get(data["$type"]) if isinstance(data["$type"], str) else None
    if cls is None or not dataclasses.is_dataclass(cls) or cls in _node_types():
        raise StoreError(f"{where}: unknown type {data['$type']!r}")
    fields = {f.name for f in _init_fields(cls)}
    unknown = set(data) - fields - {"$type"}
    if unknown:
        raise StoreError(f"{where}: {cls.__name__} has no field {sorted(unknown)[0]!r}")
    hints = _hints(cls)
    values = {name: decode(data[name], arrays, f"{path}.{name}".lstrip("."), hints.get(name, Any))
              for name in fields if name in data}  # fmt: skip
    return _construct(cls, values, where)


def _construct(cls: type, values: dict, where: str) -> Any:
    try:
        return cls(**values)
    except (TypeError, ValueError, ArithmeticError, Nml2LutError) as err:
        raise StoreError(f"{where}: invalid {cls.__name__}: {err}") from err


def _decode_any(data: Any, arrays, path: str, args: tuple = ()) -> Any:
    """Decode without an annotation (``args``: the element annotations of a dict/list/frozenset)."""
    where = path or "value"
    if data is None or isinstance(data, (bool, str, int, float)):
        return data
    if isinstance(data, list):
        if data and isinstance(data[0], str) and _registry().get(data[0]) in _node_types():
            return _decode_node(data, arrays, path, _node_types())
        return tuple(_decode_any(x, arrays, f"{path}[{i}]") for i, x in enumerate(data))
    if not isinstance(data, dict):
        raise StoreError(f"{where}: unexpected JSON value {type(data).__name__}")
    if "$type" in data:
        return _decode_dataclass(data, arrays, path)
    item = args[0] if args else Any
    if len(data) == 1:
        (tag, value), = data.items()  # fmt: skip
        if tag == "$float" and value in ("nan", "inf", "-inf"):
            return float(value)
        if tag == "$list" and isinstance(value, list):
            return [decode(x, arrays, f"{path}[{i}]", item) for i, x in enumerate(value)]
        if tag == "$frozenset" and isinstance(value, list):
            return frozenset(decode(x, arrays, path, item) for x in value)
        if tag == "$dict" and isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value):
            key_hint, value_hint = args if len(args) == 2 else (Any, Any)
            return {
                decode(k, arrays, path, key_hint): decode(v, arrays, f"{path}[{k!r}]", value_hint) for k, v in value
            }
        if tag == "$npz" and isinstance(value, str):
            if arrays is None or value not in arrays:
                raise StoreError(f"{where}: array {value!r} is missing from the .npz file")
            return arrays[value]
    if set(data) == {"$enum", "name"}:
        cls = _registry().get(data["$enum"]) if isinstance(data["$enum"], str) else None
        if cls is None or not issubclass(cls, enum.Enum) or data["name"] not in cls.__members__:
            raise StoreError(f"{where}: unknown enumeration value {data!r}")
        return cls[data["name"]]
    raise StoreError(f"{where}: unexpected JSON object with keys {sorted(data)[:5]}")


def _refuse_constant(name: str) -> Any:
    raise StoreError(f"non-standard JSON constant {name}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out = {}
    for key, value in pairs:
        if key in out:
            raise StoreError(f"duplicate JSON key {key!r}")
        out[key] = value
    return out


def loads(text: str) -> Any:
    """Strict JSON: no NaN or Infinity literals, no duplicate keys; `StoreError` otherwise."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_no_duplicates)
    except StoreError:
        raise
    except (ValueError, RecursionError) as err:
        raise StoreError(f"not valid JSON: {err}") from err


def _has_object(data: Any) -> bool:
    stack = [data]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            return True
        if isinstance(current, list):
            stack.extend(current)
    return False


def dumps(data: Any, indent: str = "") -> str:
    """JSON text with sorted keys, one key per line, and lists of plain values (expressions) on one line.

    Strict JSON: non-finite floats raise `ValueError`.
    """
    if isinstance(data, dict) and data:
        inner = indent + " "
        items = [f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {dumps(data[k], inner)}" for k in sorted(data)]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if isinstance(data, list) and _has_object(data):
        inner = indent + " "
        return "[\n" + ",\n".join(inner + dumps(x, inner) for x in data) + f"\n{indent}]"
    return json.dumps(data, sort_keys=True, allow_nan=False, ensure_ascii=False)


def node_types() -> tuple[type, ...]:
    """The expression-node classes."""
    return _node_types()
