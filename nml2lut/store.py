"""store: converted channels on disk, tables (``.npz``) beside model and metadata (``.json``), and back.

A converted channel is two files: ``<stem>.npz`` holds every array (the
table values and slopes) and ``<stem>.json`` holds the bound channel model,
the rest of the tables (grid, names, measured errors) and metadata (source,
content hash, options, versions).  `load_tables` rebuilds from them the same
`nml2lut.LoadedChannel` that `nml2lut.load_channel` gives, without the
NeuroML source and without parsing any expression text.

The model dataclasses are written generically, field by field
(`dataclasses.fields`), so fields and node types added later are stored
without changes here.  Both files are untrusted input when read back: the
JSON reader refuses NaN literals, duplicate keys, unknown types and fields,
and values that do not match the field annotations; arrays are read without
pickle, with bounded sizes, and must match the checksum in the JSON.
Writes are atomic (a temporary file in the same directory, then a rename),
and the bytes are deterministic: sorted JSON keys, and zip entries with a
fixed date.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import io
import json
import math
import os
import re
import tempfile
import types
import typing
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ._version import __version__
from .errors import Nml2LutError

__all__ = [
    "StoreError",
    "FORMAT",
    "FORMAT_VERSION",
    "encode",
    "decode",
    "dump_channel",
    "save_channel",
    "load_tables",
    "read_metadata",
    "atomic_write",
    "npz_bytes",
    "sha256_hex",
    "dumps",
]

FORMAT = "nml2lut-channel"
"""The ``format`` field of a channel's JSON file."""
FORMAT_VERSION = 1
MAX_JSON_BYTES = 16 * 1024 * 1024
MAX_NPZ_BYTES = 512 * 1024 * 1024
"""Largest ``.npz`` read, compressed or decompressed (bytes)."""
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest zip date: no timestamp in the artefact
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LOADED_CORE = ("id", "name", "mode", "model", "tables", "code")  # what load_tables rebuilds itself
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*\.npz")


class StoreError(Nml2LutError, ValueError):
    """A stored channel cannot be written or read back (missing, corrupt, or not from nml2lut)."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- the types that may be stored
@functools.cache
def _registry() -> dict[str, type]:
    """Dataclasses and enums of the modules whose objects a converted channel holds, by class name."""
    from . import expr, grids, model, tables

    found: dict[str, type] = {}
    for module in (expr, grids, model, tables):
        for obj in vars(module).values():
            storable = dataclasses.is_dataclass(obj) or (isinstance(obj, type) and issubclass(obj, enum.Enum))
            if isinstance(obj, type) and storable and obj.__module__ == module.__name__:
                if found.get(obj.__name__, obj) is not obj:
                    raise StoreError(f"two storable classes are called {obj.__name__!r}")
                found[obj.__name__] = obj
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
        fields = [(f.name, encode(getattr(obj, f.name), arrays, f"{path}.{f.name}".lstrip("."))) for f in _init_fields(cls)]
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
            return {decode(k, arrays, path, key_hint): decode(v, arrays, f"{path}[{k!r}]", value_hint) for k, v in value}
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


# ---------------------------------------------------------------- files
def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename.

    A reader sees the old file or the new one, never a part; a crash leaves
    at most a ``.nml2lut-tmp-*`` file behind.  Not synced to disk (that
    costs ~7 ms a file): after a power loss a file may be damaged, which the
    checksums of the next ``convert`` detect, converting it again.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".nml2lut-tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An ``.npz`` archive of ``arrays`` (readable by `numpy.load`), byte-for-byte deterministic."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with archive.open(info, "w") as member:
                np.lib.format.write_array(member, np.ascontiguousarray(arrays[key]), allow_pickle=False)
    return buffer.getvalue()


def _read_npz(data: bytes, where: str) -> dict[str, np.ndarray]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if sum(i.file_size for i in infos) > MAX_NPZ_BYTES:
                raise StoreError(f"{where}: arrays larger than {MAX_NPZ_BYTES} bytes")
            arrays = {}
            for info in infos:
                if not info.filename.endswith(".npy"):
                    raise StoreError(f"{where}: unexpected member {info.filename!r}")
                with archive.open(info) as member:
                    array = np.lib.format.read_array(member, allow_pickle=False)
                if array.dtype.kind not in "biuf":
                    raise StoreError(f"{where}: array {info.filename!r} of type {array.dtype} is not numeric")
                arrays[info.filename[: -len(".npy")]] = array
            return arrays
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise StoreError(f"{where}: not a readable .npz file: {err}") from err


def _refuse_constant(name: str) -> Any:
    raise StoreError(f"non-standard JSON constant {name}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out = {}
    for key, value in pairs:
        if key in out:
            raise StoreError(f"duplicate JSON key {key!r}")
        out[key] = value
    return out


def _read_json(path: Path) -> dict:
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise StoreError(f"{path}: {size} bytes, larger than the limit of {MAX_JSON_BYTES}")
        text = path.read_bytes().decode("utf-8")
        data = json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_no_duplicates)
    except StoreError as err:
        raise StoreError(f"{path}: {err}") if str(path) not in str(err) else err from err
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise StoreError(f"{path}: not a readable JSON file: {err}") from err
    if not isinstance(data, dict):
        raise StoreError(f"{path}: expected a JSON object")
    return data


def read_metadata(path: str | os.PathLike) -> dict:
    """The JSON of a converted channel, checked to be one (``format`` and ``format_version``).

    Raises
    ------
    StoreError
        Not readable, not JSON, or not an nml2lut channel of this format version.
    """
    path = Path(path)
    data = _read_json(path)
    if data.get("format") != FORMAT:
        raise StoreError(f"{path}: not an nml2lut channel file (format {data.get('format')!r}, expected {FORMAT!r})")
    if data.get("format_version") != FORMAT_VERSION:
        raise StoreError(f"{path}: format version {data.get('format_version')!r}; this nml2lut reads {FORMAT_VERSION}")
    tables_file = data.get("tables_file")
    if not isinstance(tables_file, str) or not _FILE_NAME.fullmatch(tables_file):
        raise StoreError(f"{path}: bad tables_file {tables_file!r} (a file name beside the JSON is expected)")
    if not isinstance(data.get("tables_sha256"), str):
        raise StoreError(f"{path}: no tables_sha256")
    return data


# ---------------------------------------------------------------- channels
def _plain(value: Any) -> Any:
    """Summary values for people reading the JSON: non-finite floats become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _summary(loaded) -> dict:
    tables = loaded.tables
    return {
        "temperature": _plain(loaded.model.temperature),
        "grid": None if tables is None else _plain({**dataclasses.asdict(tables.grid), "step": tables.grid.step}),
        "max_error": _plain(loaded.max_error),
        "errors": {k: _plain(dataclasses.asdict(e)) for k, e in loaded.errors.items()},
    }


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


def dump_channel(loaded, stem: str, metadata: dict | None = None) -> tuple[bytes, bytes]:
    """The ``.npz`` and ``.json`` bytes of a loaded channel (``lut`` mode), to be saved as ``<stem>.*``.

    ``metadata`` (JSON-compatible: source, content hash, options...) is
    stored beside the model; its keys must not clash with the file's own.

    Raises
    ------
    StoreError
        The channel is in ``exact`` mode, or holds a value that cannot be stored.
    """
    if loaded.mode != "lut":
        raise StoreError(f"channel {loaded.id!r}: only lut-mode channels are stored, not {loaded.mode!r}")
    arrays: dict[str, np.ndarray] = {}
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "nml2lut_version": __version__,
        "id": loaded.id,
        "name": loaded.name,
        "model": encode(loaded.model, arrays, "model"),
        "tables": encode(loaded.tables, arrays, ""),
        # Further fields of LoadedChannel (the kinetic-scheme dt...), whatever they are.
        "loaded": {f.name: encode(getattr(loaded, f.name), arrays, f.name)
                   for f in dataclasses.fields(loaded) if f.name not in _LOADED_CORE},
        **_summary(loaded),
    }  # fmt: skip
    npz = npz_bytes(arrays)
    document.update(tables_file=f"{stem}.npz", tables_sha256=sha256_hex(npz))
    clash = set(metadata or {}) & set(document)
    if clash:
        raise StoreError(f"metadata keys {sorted(clash)} clash with the channel file's own")
    document.update(metadata or {})
    try:
        text = dumps(document)
    except (TypeError, ValueError) as err:
        raise StoreError(f"channel {loaded.id!r}: metadata is not JSON-compatible: {err}") from err
    return npz, (text + "\n").encode("utf-8")


def save_channel(loaded, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Save a loaded channel as ``<path>.npz`` and ``<path>.json`` (``path`` with or without suffix).

    The tables are written first and the JSON, which names their checksum,
    last, each atomically: a JSON file always describes complete tables.

    Returns
    -------
    Path
        The JSON file, which `load_tables` reads.

    Examples
    --------
    >>> import nml2lut
    >>> na = nml2lut.load_channel("example_channels/hh_na.channel.nml", temperature="6.3degC")  # doctest: +SKIP
    >>> path = save_channel(na, "out/hh_na")  # doctest: +SKIP
    >>> nml2lut.load_tables(path).curves([-0.065])["m"]["inf"]  # doctest: +SKIP
    """
    path = Path(path)
    path = path.with_suffix("") if path.suffix in (".json", ".npz") else path
    npz, text = dump_channel(loaded, path.name, metadata)
    atomic_write(path.with_name(f"{path.name}.npz"), npz)
    atomic_write(path.with_name(f"{path.name}.json"), text)
    return path.with_name(f"{path.name}.json")


def _check_trees(model: Any, where: str) -> None:
    """Every expression in the model evaluates: known functions, valid names, bounded depth."""
    from . import expr

    node_types = _node_types()
    pending = [model]
    while pending:
        current = pending.pop()
        if isinstance(current, node_types):
            names = expr.free_symbols(current)
            bad = [n for n in names if not _NAME.fullmatch(n)]
            if bad:
                raise StoreError(f"{where}: invalid symbol name {bad[0]!r} in an expression")
            expr.evaluate(current, {n: np.array([-0.065, 0.0]) for n in names})
        elif dataclasses.is_dataclass(current):
            pending.extend(getattr(current, f.name) for f in dataclasses.fields(current))
        elif isinstance(current, (tuple, list, frozenset)):
            pending.extend(current)
        elif isinstance(current, dict):
            pending.extend(current.values())


def _check_tables(tables: Any, where: str) -> None:
    from .tables import Tables

    if not isinstance(tables, Tables):
        raise StoreError(f"{where}: 'tables' is not a Tables object")
    shape = (tables.grid.n, len(tables.names))
    if len(set(tables.names)) != len(tables.names):
        raise StoreError(f"{where}: duplicate curve names in the tables")
    for name in ("values", "slopes"):
        array = getattr(tables, name)
        if array.dtype != np.float64 or array.shape != shape:
            raise StoreError(f"{where}: {name} has shape {array.shape} and type {array.dtype}, expected {shape} float64")
        if not np.all(np.isfinite(array)):
            raise StoreError(f"{where}: {name} holds NaN or infinite values")
    if set(tables.errors) - set(tables.names):
        raise StoreError(f"{where}: errors for curves the tables do not have")


def _decode_loaded(data: Any, arrays, cls: type) -> dict:
    """The stored fields of LoadedChannel other than those load_tables rebuilds, checked against their annotations."""
    fields = {f.name for f in dataclasses.fields(cls)} - set(_LOADED_CORE)
    if not isinstance(data, dict) or set(data) - fields:
        unknown = sorted(set(data) - fields) if isinstance(data, dict) else data
        raise StoreError(f"'loaded' holds fields this nml2lut does not know: {unknown!r}")
    hints = _hints(cls)
    return {k: decode(v, arrays, f"loaded.{k}", hints.get(k, Any)) for k, v in data.items()}


def _read_npz_file(path: Path, expected_sha: str) -> dict[str, np.ndarray]:
    try:
        if path.stat().st_size > MAX_NPZ_BYTES:
            raise StoreError(f"{path}: larger than {MAX_NPZ_BYTES} bytes")
        data = path.read_bytes()
    except OSError as err:
        raise StoreError(f"{path}: cannot read the tables: {err.strerror or err}") from err
    if sha256_hex(data) != expected_sha:
        raise StoreError(f"{path}: checksum differs from the one in its JSON file (changed or corrupt)")
    return _read_npz(data, str(path))


def load_tables(path: str | os.PathLike, *, name: str | None = None):
    """Load a converted channel (its ``.json`` or ``.npz``) as `nml2lut.LoadedChannel`, without its NeuroML.

    Parameters
    ----------
    path : path-like
        ``<stem>.json`` or ``<stem>.npz`` written by `save_channel` or ``nml2lut convert``.
    name : str, optional
        Suffix of the Brian2 names; default the one it was converted with.

    Returns
    -------
    LoadedChannel
        Equal to what `nml2lut.load_channel` returned at conversion: same
        model, tables, equations, curves, grid and errors.

    Raises
    ------
    StoreError
        Missing files, a checksum mismatch, or content that is not a valid
        converted channel (the files are checked as untrusted input).

    Examples
    --------
    >>> import nml2lut
    >>> na = nml2lut.load_tables("out/channels/hh_na.channel.nml/hh_na.json", name="Na")  # doctest: +SKIP
    >>> sorted(na.curves([-0.065]))  # doctest: +SKIP
    ['h', 'm']
    """
    from .channel import LoadedChannel
    from .emit import identifier, to_brian2
    from .model import Channel
    from .tables import Tables

    path = Path(path)
    json_path = path.with_suffix(".json") if path.suffix == ".npz" else path
    meta = read_metadata(json_path)
    where = str(json_path)
    arrays = _read_npz_file(json_path.parent / meta["tables_file"], meta["tables_sha256"])
    try:
        model = decode(meta.get("model"), arrays, "model", Channel)
        tables = decode(meta.get("tables"), arrays, "tables", Tables | None)
        if not isinstance(model, Channel):
            raise StoreError("'model' is not a Channel")
        _check_trees(model, where)
        if tables is not None:
            _check_tables(tables, where)
        extra = _decode_loaded(meta.get("loaded", {}), arrays, LoadedChannel)
        stored = meta.get("name")
        suffix = identifier(name if name is not None else stored if isinstance(stored, str) else model.id)
        code = to_brian2(model, tables, suffix)
    except StoreError as err:
        raise StoreError(f"{where}: {err}") from err
    except RecursionError as err:
        raise StoreError(f"{where}: nested too deeply") from err
    except Nml2LutError as err:
        raise StoreError(f"{where}: invalid stored channel: {err}") from err
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as err:
        raise StoreError(f"{where}: tables do not fit the model: {type(err).__name__}: {err}") from err
    return LoadedChannel(id=model.id, name=suffix, mode="lut", model=model, tables=tables, code=code, **extra)
