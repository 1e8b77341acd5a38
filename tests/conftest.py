"""Shared pytest configuration: markers for compiled Brian2 targets, a standalone-device fixture."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The package is used from the source tree; make it importable without an install.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cython: compiles Brian2 code with the Cython target (seconds)")
    config.addinivalue_line("markers", "cpp_standalone: builds a Brian2 cpp_standalone project (10-20 s)")


@pytest.fixture
def standalone_device(tmp_path: Path):
    """Switch Brian2 to ``cpp_standalone`` with ``build_on_run=True``; yield the project directory.

    The project goes to ``tmp_path / "standalone"``.  Afterwards (pass or fail) the
    standalone device is reinitialised and the runtime device restored, so later
    tests are unaffected.  Use ``run(...)``, then read monitors or variables.
    """
    import brian2

    directory = tmp_path / "standalone"
    brian2.set_device("cpp_standalone", directory=str(directory), build_on_run=True)
    try:
        yield directory
    finally:
        brian2.device.reinit()
        brian2.device.activate()
        brian2.set_device("runtime")
