"""parse.xmlread: NeuroML/LEMS files -> hardened lxml trees, with their includes.

The only place nml2lut touches XML bytes.  Files are data, never code: the
parser fetches nothing from the network, expands no entities, refuses DTDs that
declare entities, and bounds file size and nesting depth.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from ..errors import IncludeError, ParseError

__all__ = ["XmlFile", "read_xml", "read_with_includes", "local_name", "CORE_FILES", "MAX_BYTES"]

MAX_BYTES = 64 * 1024 * 1024
"""Largest file read (bytes); larger files are refused before parsing."""

# Files of the NeuroML2 core types, found by LEMS tools on their own include
# path: their content is built into nml2lut, so an include of them is satisfied.
CORE_FILES = frozenset(
    {
        "NeuroMLCoreDimensions.xml",
        "NeuroMLCoreCompTypes.xml",
        "Cells.xml",
        "Channels.xml",
        "Synapses.xml",
        "Networks.xml",
        "Simulation.xml",
        "Inputs.xml",
        "PyNN.xml",
    }
)

_ROOTS = ("neuroml", "Lems")


@dataclass
class XmlFile:
    """One parsed file: its path and root element."""

    path: Path
    root: etree._Element
    includes: list[Path] = field(default_factory=list)


def local_name(element: etree._Element) -> str:
    """The tag of ``element`` without its XML namespace."""
    tag = element.tag
    if not isinstance(tag, str):  # comments and processing instructions
        return ""
    return tag.rpartition("}")[2]


def describe(element: etree._Element, path: str) -> str:
    """``path:line: <tag id='x'>``: where an element is, for messages."""
    ident = element.get("id")
    label = f"<{local_name(element)}{f' id={ident!r}' if ident else ''}>"
    return f"{path}:{element.sourceline}: {label}"


def component_type(element: etree._Element) -> str:
    """A component's type: its ``type`` attribute when given (``<cell type="pointCellCondBased">``), else its tag."""
    return element.get("type") or local_name(element)


def _parser() -> etree.XMLParser:
    # A fresh parser per file: lxml parsers are not thread-safe.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def read_xml(path: str | os.PathLike, *, max_bytes: int = MAX_BYTES) -> XmlFile:
    """Parse one NeuroML or LEMS file safely.

    Parameters
    ----------
    path : path-like
        The file.
    max_bytes : int
        Files larger than this are refused with `ParseError` before parsing.

    Returns
    -------
    XmlFile

    Raises
    ------
    ParseError
        Unreadable, too large, not well-formed, declares entities, or its root
        is neither ``<neuroml>`` nor ``<Lems>``.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise ParseError(f"cannot read file: {err.strerror}", str(path)) from err
    if size > max_bytes:
        raise ParseError(f"file is {size} bytes, larger than the limit of {max_bytes}", str(path))
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ParseError(f"cannot read file: {err.strerror}", str(path)) from err
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as err:
        line = err.lineno if err.lineno else None
        raise ParseError(f"not well-formed XML: {err.msg}", str(path), line) from err
    except ValueError as err:  # e.g. unsupported encoding declarations
        raise ParseError(f"cannot decode XML: {err}", str(path)) from err
    _refuse_entities(root, path)
    if local_name(root) not in _ROOTS:
        raise ParseError(
            f"root element is <{local_name(root)}>, expected <neuroml> or <Lems>",
            str(path),
            root.sourceline,
        )
    return XmlFile(path, root)


def _refuse_entities(root: etree._Element, path: Path) -> None:
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        raise ParseError("the document declares XML entities, which are not allowed", str(path), 1)
    for node in root.iter(etree.Entity):
        raise ParseError(f"entity reference {node.text} is not allowed", str(path), node.sourceline)


def _include_targets(xml: XmlFile) -> list[tuple[str, int | None]]:
    targets = []
    for element in xml.root:
        name = local_name(element)
        if name == "include":
            target = element.get("href")
        elif name == "Include":
            target = element.get("file") or element.get("href")
        else:
            continue
        if not target:
            raise IncludeError(f"<{name}> without a file", str(xml.path), element.sourceline)
        targets.append((target, element.sourceline))
    return targets


def _resolve_include(xml: XmlFile, target: str, line: int | None) -> Path | None:
    if "://" in target:
        raise IncludeError(f"include of a URL ({target!r}) is not fetched", str(xml.path), line)
    if Path(target).name in CORE_FILES:
        return None
    candidate = (xml.path.parent / target).resolve()
    if candidate.is_file():
        return candidate
    raise IncludeError(f"included file {target!r} not found", str(xml.path), line)


def read_with_includes(path: str | os.PathLike, *, max_bytes: int = MAX_BYTES) -> list[XmlFile]:
    """Read a file and, depth first, every file it includes.

    Each file is read once even when several files include it; a file that
    includes itself through a chain is an error.  Includes of the NeuroML2
    core-type files (`CORE_FILES`, e.g. ``Cells.xml``) are satisfied by
    nml2lut's built-in definitions and never read, as LEMS tools find them on
    their own include path.

    Returns
    -------
    list of XmlFile
        The files in dependency order: includes before the files including them.

    Raises
    ------
    IncludeError
        A missing include, a URL include, or an include cycle.
    """
    done: dict[Path, XmlFile] = {}
    order: list[XmlFile] = []

    def visit(file_path: Path, chain: tuple[Path, ...]) -> None:
        xml = read_xml(file_path, max_bytes=max_bytes)
        for target, line in _include_targets(xml):
            resolved = _resolve_include(xml, target, line)
            if resolved is None:
                continue
            if resolved in chain or resolved == file_path:
                cycle = " -> ".join(p.name for p in (*chain, file_path, resolved))
                raise IncludeError(f"include cycle: {cycle}", str(xml.path), line)
            xml.includes.append(resolved)
            if resolved not in done:
                visit(resolved, (*chain, file_path))
        done[file_path] = xml
        order.append(xml)

    visit(Path(path).resolve(), ())
    return order
