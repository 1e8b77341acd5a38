"""The package's layering holds: checked statically, from the source text."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nml2lut"
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_parse_reads_xml(path):
    if "lxml" in _imports(path):
        assert path.parent.name == "parse", f"{path} imports lxml; only nml2lut.parse may"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_code_execution_of_file_text(path):
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in {"eval", "exec", "compile", "__import__"}, f"{path}:{node.lineno}"
        if isinstance(node, ast.Attribute):
            assert node.attr not in {"sympify", "literal_eval"}, f"{path}:{node.lineno}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_library_never_prints_or_exits(path):
    if path.name in {"cli.py"}:
        return
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"^\s*print\(", text, re.M), f"{path} prints"
    assert "sys.exit" not in text, f"{path} exits"
