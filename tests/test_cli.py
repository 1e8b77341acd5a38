"""The nml2lut command: the demo runs and reports; usage errors exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nml2lut.cli import main


def test_demo_prints_comparison_and_saves_plot(tmp_path, capsys):
    plot = tmp_path / "demo.png"
    status = main(["demo", "--neurons", "2", "--duration", "30", "-o", str(plot)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "spike-time difference lut vs exact: max" in out
    assert "run time exact" in out and "run time lut" in out
    assert plot.stat().st_size > 10_000
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_console_script_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "nml2lut.cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.startswith("nml2lut ")
