"""sources: the files of a NeuroML library to convert or check; their names, content hashes and loading options.

`discover` lists every file under the inputs (recursively, sorted) with a
reason for each it will not read; `content_hash` fingerprints a file with
everything it includes; `channel_stems` makes channel ids safe file names.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ._version import __version__
from .errors import Nml2LutError
from .store import sha256_hex
from .tables import DEFAULT_TOLERANCE

__all__ = [
    "Options",
    "Entry",
    "Discovery",
    "BatchError",
    "discover",
    "content_hash",
    "channel_stems",
    "relative_paths",
    "display_path",
    "DEFAULT_TEMPERATURE",
    "SUFFIXES",
]

DEFAULT_TEMPERATURE = "34degC"
"""Temperature of a batch unless told otherwise: channels with q10 settings need one."""
SUFFIXES = (".nml", ".xml")
_ROOTS = ("neuroml", "Lems")
_SNIFF_BYTES = 65536
_PROLOG = re.compile(
    rb"(?:\s+|<\?.*?\?>|<!--.*?-->|<!DOCTYPE(?:[^\[>]|\[.*?\])*>)*<(?:[A-Za-z_][\w.\-]*:)?([A-Za-z_][\w.\-]*)", re.S
)
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}


class BatchError(Nml2LutError, ValueError):
    """The batch cannot start: a missing input path or an unusable output directory."""


@dataclass(frozen=True)
class Options:
    """What every channel of a batch is loaded with (the arguments of `nml2lut.load_channel`).

    ``temperature``, ``vshift`` and ``dt`` are NeuroML text (``"34degC"``,
    ``"0mV"``, ``"0.025ms"``) or None; ``v_range`` a pair of voltages as text.
    """

    temperature: str | None = DEFAULT_TEMPERATURE
    v_range: tuple[str, str] | None = None
    tolerance: float = DEFAULT_TOLERANCE
    n_points: int | None = None
    vshift: str | None = None
    dt: str | None = None

    def api(self) -> dict:
        """Keyword arguments for `nml2lut.load_channel` (unset ones left out)."""
        kwargs = {"temperature": self.temperature, "v_range": self.v_range, "tolerance": self.tolerance}
        if self.n_points is not None:
            kwargs["n_points"] = self.n_points
        for name in ("vshift", "dt"):  # passed only when set: older load_channel may not know them
            if getattr(self, name) is not None:
                kwargs[name] = getattr(self, name)
        return kwargs

    def as_json(self) -> dict:
        data = asdict(self)
        data["v_range"] = None if self.v_range is None else list(self.v_range)
        return data


@dataclass(frozen=True)
class Entry:
    """A file found in the input: ``rel`` is its path in reports and in the output tree."""

    path: Path
    rel: str
    skip: str = ""  # why it is not read, if it is not
    via: str = ""  # the file that includes it, when it was found only through an include


@dataclass
class Discovery:
    root: Path
    entries: list[Entry] = field(default_factory=list)
    skipped_directories: list[dict] = field(default_factory=list)


# ---------------------------------------------------------------- finding files
def _sniff_root(path: Path) -> str | None:
    """The root element's local name if the first bytes show it; None if they do not."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError:
        return None
    match = _PROLOG.match(head.removeprefix(b"\xef\xbb\xbf"))
    return match.group(1).decode("ascii", "replace") if match else None


def _classify_file(path: Path) -> str:
    """Why ``path`` is skipped, or "" when it is to be read."""
    if path.suffix.lower() not in SUFFIXES:
        return f"not a NeuroML file name ({path.suffix or 'no suffix'})"
    try:
        if not path.is_file():
            return "not a regular file"
    except OSError as err:
        return f"cannot be read: {err.strerror}"
    if path.suffix.lower() == ".xml":
        root = _sniff_root(path)
        if root is not None and root not in _ROOTS:
            return f"XML whose root <{root}> is not <neuroml> or <Lems>"
    return ""


def _root_of(paths: list[Path]) -> Path:
    folders = [p if p.is_dir() else p.parent for p in paths]
    return Path(os.path.commonpath([str(f) for f in folders]))


def discover(paths: Sequence[str | os.PathLike], *, exclude: Sequence[str | os.PathLike] = ()) -> Discovery:
    """Every file under ``paths`` (files or directories, recursively), in sorted order.

    Files named ``*.nml`` are read; ``*.xml`` when its root is ``<neuroml>``
    or ``<Lems>`` (or cannot be seen); everything else is listed as skipped
    with the reason.  Directories whose name starts with a dot, symbolic
    links to directories and the ``exclude`` directories (the output) are not
    searched, and are listed too.

    Raises
    ------
    BatchError
        An input path does not exist.
    """
    given = [Path(os.path.abspath(p)) for p in paths]
    missing = [str(p) for p in given if not p.exists()]
    if missing:
        raise BatchError(f"input not found: {', '.join(missing)}")
    if not given:
        raise BatchError("no input paths")
    excluded = {Path(os.path.abspath(p)) for p in exclude}
    found = Discovery(_root_of(given))
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.entries.append(Entry(path, path.relative_to(found.root).as_posix(), _classify_file(path)))

    for top in given:
        if not top.is_dir():
            add(top)
            continue

        def unlisted(err: OSError) -> None:
            reason = f"cannot be listed: {err.strerror}"
            found.skipped_directories.append({"path": display_path(Path(err.filename), found.root), "reason": reason})

        for folder, dirs, files in os.walk(top, onerror=unlisted):
            here = Path(folder)
            for name in sorted(dirs):
                reason = _skip_directory(here / name, excluded)
                if reason:
                    dirs.remove(name)
                    found.skipped_directories.append({"path": display_path(here / name, found.root), "reason": reason})
            dirs.sort()
            for name in sorted(files):
                add(here / name)
    found.entries.sort(key=lambda e: e.rel)
    found.skipped_directories.sort(key=lambda d: d["path"])
    return found


def _skip_directory(path: Path, excluded: set[Path]) -> str:
    if path in excluded:
        return "the output directory"
    if path.is_symlink():
        return "symbolic link to a directory (not followed)"
    if path.name.startswith("."):
        return "hidden directory"
    return ""


def display_path(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


# ---------------------------------------------------------------- hashes and names
def content_hash(main: Path, files: Sequence[Path], options: Options) -> str:
    """sha256 over the bytes of ``files`` (the file and all it includes, sorted), the options and the version."""
    base = Path(main).resolve().parent
    digest = hashlib.sha256(f"nml2lut {__version__}\0{json.dumps(options.as_json(), sort_keys=True)}\0".encode())
    for rel, path in sorted((Path(os.path.relpath(p, base)).as_posix(), p) for p in files):
        with open(path, "rb") as handle:
            file_digest = hashlib.file_digest(handle, "sha256").digest()
        digest.update(rel.encode("utf-8", "surrogateescape") + b"\0" + file_digest)
    return f"sha256:{digest.hexdigest()}"


def relative_paths(files: Sequence[Path], base: Path) -> list[str]:
    return sorted(Path(os.path.relpath(f, base)).as_posix() for f in files)


def channel_stems(ids: Sequence[str]) -> list[str]:
    """File names (without suffix) for channel ids: unique even on case-insensitive file systems."""
    stems, taken = [], set()
    for ident in ids:
        stem = _UNSAFE.sub("_", ident)[:80] or "_"
        if stem != ident or stem.lower() in taken or stem.upper() in _WINDOWS_RESERVED:
            stem = f"{stem}-{sha256_hex(ident.encode('utf-8', 'surrogateescape'))[:10]}"
        taken.add(stem.lower())
        stems.append(stem)
    return stems
