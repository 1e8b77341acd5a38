"""machine: where a measurement was made, for the reports of benchmarks and validations.

Figures are only comparable with the machine, its load, the tool versions and
the code they came from; the scripts in ``benchmarks/`` and ``validation/``
record them with these functions.  Read-only: git is asked, never changed.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["load_average", "cpu_model", "commit", "describe"]

_REPO = Path(__file__).resolve().parents[1]


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the system has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def cpu_model() -> str:
    """The processor's model name."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def commit(repo: Path = _REPO) -> str | None:
    """HEAD of ``repo``, with ``"+edits"`` when its ``nml2lut/`` has uncommitted changes; None outside git."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        head = subprocess.run([git, "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True)
        dirty = subprocess.run([git, "status", "--porcelain", "--", "nml2lut"], cwd=repo, capture_output=True,
                               text=True)  # fmt: skip
    except OSError:
        return None
    if head.returncode:
        return None
    return head.stdout.strip() + ("+edits" if dirty.stdout.strip() else "")


def describe(packages: tuple[str, ...] = ("brian2", "numpy", "Cython", "nml2lut")) -> dict:
    """Platform, processor, core count, Python, the versions of ``packages`` (None if absent) and gcc."""
    info: dict = {
        "platform": platform.platform(),
        "processor": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    for package in packages:
        try:
            info[package] = version(package)
        except PackageNotFoundError:
            info[package] = None
    gcc = shutil.which("gcc")
    if gcc:
        info["gcc"] = subprocess.run([gcc, "-dumpfullversion"], capture_output=True, text=True).stdout.strip()
    return info
