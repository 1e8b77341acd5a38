"""store: converted channels on disk, tables (``.npz``) beside model and metadata (``.json``), and back.

A converted channel is two files: ``<stem>.npz`` holds every array (the
table values and slopes) and ``<stem>.json`` holds the bound channel model,
the rest of the tables (grid, names, measured errors) and metadata (source,
content hash, options, versions).  `load_tables` rebuilds from them the same
`nml2lut.LoadedChannel` that `nml2lut.load_channel` gives, without the
NeuroML source and without parsing any expression text.

The model dataclasses are written generically, field by field, by
`nml2lut.codec`, so fields and node types added later are stored without
changes here.  Both files are untrusted input when read back: the
JSON reader refuses NaN literals, duplicate keys, unknown types and fields,
and values that do not match the field annotations; arrays are read without
pickle, with bounded sizes, and must match the checksum in the JSON.
Writes are atomic (a temporary file in the same directory, then a rename),
and the bytes are deterministic: sorted JSON keys, and zip entries with a
fixed date.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import io
import math
import os
import re
import tempfile
import typing
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ._version import __version__
from .codec import StoreError, decode, dumps, encode, loads, node_types
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
    "MAX_JSON_BYTES",
    "MAX_NPZ_BYTES",
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


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


def _read_json(path: Path) -> dict:
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise StoreError(f"{path}: {size} bytes, larger than the limit of {MAX_JSON_BYTES}")
        data = loads(path.read_bytes().decode("utf-8"))
    except StoreError as err:
        if str(path) in str(err):
            raise
        raise StoreError(f"{path}: {err}") from err
    except (OSError, UnicodeDecodeError) as err:
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
        "loaded": {k: encode(v, arrays, k) for k, v in _extra_fields(loaded).items()},
        **_summary(loaded),
    }  # fmt: skip
    _check_rebuild(loaded)
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


def _extra_fields(loaded) -> dict:
    return {f.name: getattr(loaded, f.name) for f in dataclasses.fields(loaded) if f.name not in _LOADED_CORE}


def _rebuild_code(model, tables, name: str, extra: dict):
    """The channel's Brian2 code from its stored parts: `nml2lut.emit.to_brian2` with the
    further LoadedChannel fields it takes by name (``tables2d``, ``conc``...)."""
    from .emit import to_brian2

    parameters = list(inspect.signature(to_brian2).parameters)[3:]
    return to_brian2(model, tables, name, **{k: extra[k] for k in parameters if k in extra})


def _same_code(a, b) -> bool:
    return (
        str(a.equations) == str(b.equations)
        and a.initial == b.initial
        and getattr(a, "updates", None) == getattr(b, "updates", None)
    )


def _check_rebuild(loaded) -> None:
    """Refuse to store a channel whose equations load_tables could not rebuild exactly."""
    try:
        rebuilt = _rebuild_code(loaded.model, loaded.tables, loaded.name, _extra_fields(loaded))
    except Exception as err:  # whatever emit raises, the channel cannot be stored faithfully
        raise StoreError(
            f"channel {loaded.id!r}: its equations cannot be rebuilt from the stored parts: {err}"
        ) from err
    if not _same_code(rebuilt, loaded.code):
        raise StoreError(
            f"channel {loaded.id!r}: its equations cannot be rebuilt from the stored parts "
            "(a loading option that LoadedChannel does not record, such as gating='step'?)"
        )


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

    nodes = node_types()
    pending = [model]
    while pending:
        current = pending.pop()
        if isinstance(current, nodes):
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
            raise StoreError(
                f"{where}: {name} has shape {array.shape} and type {array.dtype}, expected {shape} float64"
            )
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
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # unresolvable annotations are not checked
        hints = {}
    return {k: decode(v, arrays, f"loaded.{k}", hints.get(k, Any)) for k, v in data.items()}


def _check_columns(tables: Any, where: str) -> None:
    """Other tables (2-D...): as many unique names as columns in their values."""
    table = getattr(tables, "table", None)
    names = getattr(tables, "names", None)
    values = getattr(table, "values", None)
    if isinstance(names, tuple) and isinstance(values, np.ndarray):
        if len(set(names)) != len(names) or values.ndim < 1 or values.shape[-1] != len(names):
            raise StoreError(f"{where}: {type(tables).__name__} has {len(names)} names for {values.shape[-1:]} columns")


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
    from .emit import identifier
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
        for value in extra.values():
            _check_columns(value, where)
        stored = meta.get("name")
        suffix = identifier(name if name is not None else stored if isinstance(stored, str) else model.id)
        code = _rebuild_code(model, tables, suffix, extra)
    except StoreError as err:
        raise StoreError(f"{where}: {err}") from err
    except RecursionError as err:
        raise StoreError(f"{where}: nested too deeply") from err
    except Nml2LutError as err:
        raise StoreError(f"{where}: invalid stored channel: {err}") from err
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as err:
        raise StoreError(f"{where}: tables do not fit the model: {type(err).__name__}: {err}") from err
    return LoadedChannel(id=model.id, name=suffix, mode="lut", model=model, tables=tables, code=code, **extra)
