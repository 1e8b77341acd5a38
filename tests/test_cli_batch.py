"""The batch commands: ``nml2lut convert``, ``check`` and ``curves``; exit statuses 0, 1 and 2; the corpus run."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

import nml2lut
from nml2lut import jlems
from nml2lut.cli import main
from tests.helpers import HH_K, write_nml
from tests.oracle import CORPUS

EXAMPLES = Path(__file__).resolve().parents[1] / "example_channels"


@pytest.fixture
def library(tmp_path):
    folder = tmp_path / "lib"
    folder.mkdir()
    for name in ("hh_na", "hh_k", "hh_leak"):
        shutil.copy(EXAMPLES / f"{name}.channel.nml", folder)
    return folder


def test_convert_exits_0_and_a_rerun_does_nothing(library, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["convert", str(library), "-o", str(out), "--jobs", "2", "--temperature", "6.3degC"]) == 0
    printed = capsys.readouterr().out
    assert "3 files (3 converted, 0 failed, 0 skipped, 0 up to date), 3 channels (3 converted" in printed
    assert f"report: {out}/report.md" in printed
    assert main(["convert", str(library), "-o", str(out), "--temperature", "6.3degC"]) == 0
    assert "3 channels (0 converted, 3 up to date, 0 failed)" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["options"]["temperature"] == "6.3degC"
    loaded = nml2lut.store.load_tables(out / report["files"][1]["channels"][0]["output"])
    assert loaded.temperature == pytest.approx(279.45)


def test_convert_exits_1_when_something_failed(library, tmp_path, capsys):
    (library / "broken.nml").write_text("<neuroml><ionChannelHH")
    write_nml(library, HH_K.replace("10pS", "10 furlongs"), name="bad_unit.nml")
    assert main(["convert", str(library), "-o", str(tmp_path / "out"), "-q"]) == 1
    printed = capsys.readouterr().out
    assert "failures: ParseError 1, UnitError 1" in printed
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    by_path = {f["path"]: f for f in report["files"]}
    assert by_path["broken.nml"]["error"]["type"] == "ParseError" and by_path["broken.nml"]["error"]["line"] == 1
    assert by_path["bad_unit.nml"]["channels"][0]["error"]["type"] == "UnitError"
    assert by_path["hh_na.channel.nml"]["channels"][0]["status"] == "converted"


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["convert", "NOWHERE", "-o", "OUT"], "input not found"),
        (["convert", "LIB"], "the following arguments are required: -o/--output"),
        (["convert", "LIB", "-o", "OUT", "--temperature", "34"], "has no unit"),
        (["convert", "LIB", "-o", "OUT", "--v-range=60mV,-100mV"], "HIGH must be above LOW"),
        (["convert", "LIB", "-o", "OUT", "--v-range=-100mV"], "is not LOW,HIGH"),
        (["convert", "LIB", "-o", "OUT", "--jobs", "0"], "must be a positive number"),
        (["convert", "LIB", "-o", "OUT", "--tolerance", "nan"], "must be a positive number"),
        (["convert", "LIB", "-o", "OUT", "--dt", "1mV"], "expected a time"),
        (["convert", "LIB", "-o", "FILE"], "not a directory"),
        (["check"], "the following arguments are required: PATH"),
        (["curves", "NOWHERE"], "no such file"),
    ],
)
def test_usage_errors_exit_2(library, tmp_path, capsys, arguments, message):
    (tmp_path / "FILE").write_text("")
    names = {"LIB": str(library), "OUT": str(tmp_path / "out"), "FILE": str(tmp_path / "FILE"),
             "NOWHERE": str(tmp_path / "nowhere")}  # fmt: skip
    arguments = [names.get(a, a) for a in arguments]
    try:
        status = main(arguments)
    except SystemExit as exit_:
        status = exit_.code
    assert status == 2
    assert message in capsys.readouterr().err


def test_check_reports_worst_errors_and_exits_0(library, tmp_path, capsys):
    assert main(["convert", str(library), "-o", str(tmp_path / "out"), "-q"]) == 0
    capsys.readouterr()
    status = main(["check", str(library), str(tmp_path / "out" / "channels"), "-v", "--report", str(tmp_path / "r")])
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "jLEMS comparison" in printed  # ran, or says why not
    assert "nml2lut check: " in printed and "6 channels (6 ok, 0 breach, 0 failed)" in printed
    report = json.loads((tmp_path / "r" / "check-report.json").read_text())
    na = next(c for f in report["files"] if f["path"].endswith("hh_na.channel.nml") for c in f["channels"])
    assert {c["curve"] for c in na["curves"]} == {"m/inf", "m/tau", "h/inf", "h/tau"}
    assert na["worst"]["max_error"] <= 1e-4 and -100 <= na["worst"]["at_mV"] <= 60
    for curve in na["curves"]:  # the dense check finds what the build measured, to within a few percent
        assert curve["max_error"] == pytest.approx(curve["measured"], rel=0.05)


def test_check_exits_1_on_a_breach(library, capsys):
    # A 20-point grid cannot meet the 1e-4 tolerance: the check finds out.
    status = main(["check", str(library / "hh_na.channel.nml"), "--n-points", "20", "--points", "10001", "--no-jlems"])
    printed = capsys.readouterr().out
    assert status == 1
    assert "BREACH" in printed and "tolerance 0.0001" in printed and "jLEMS comparison not asked for" in printed


def test_curves_writes_png_and_csv(tmp_path, capsys):
    out = tmp_path / "curves"
    assert main(["curves", str(EXAMPLES / "frac_ih.channel.nml"), "-o", str(out)]) == 0
    assert "frac_ih:" in capsys.readouterr().out
    assert (out / "frac_ih.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    header, *rows = (out / "frac_ih.csv").read_text().splitlines()
    assert header.split(",") == [
        "v_mV", "m.fast_inf_exact", "m.fast_inf_lut", "m.fast_tau_exact_ms", "m.fast_tau_lut_ms",
        "m.slow_inf_exact", "m.slow_inf_lut", "m.slow_tau_exact_ms", "m.slow_tau_lut_ms",
    ]  # fmt: skip
    table = np.array([[float(x) for x in row.split(",")] for row in rows])
    assert table[0, 0] == pytest.approx(-100) and table[-1, 0] == pytest.approx(60) and len(rows) == 1601
    assert np.max(np.abs(table[:, 1] - table[:, 2])) < 1e-4  # LUT beside exact
    assert np.max(np.abs(table[:, 3] / table[:, 4] - 1)) < 1e-4


def test_curves_of_one_channel_and_of_a_converted_file(tmp_path, capsys):
    out = tmp_path / "curves"
    assert (
        main(["curves", str(EXAMPLES / "q10_ka.channel.nml"), "--channel", "q10_ka2", "-o", str(out), "--points", "50"])
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["q10_ka2.csv", "q10_ka2.png"]
    assert len((out / "q10_ka2.csv").read_text().splitlines()) == 51
    assert main(["curves", str(EXAMPLES / "q10_ka.channel.nml"), "--channel", "nope", "-o", str(out)]) == 1
    assert "no channel 'nope'" in capsys.readouterr().err
    channel = nml2lut.load_channel(EXAMPLES / "hh_k.channel.nml", temperature="6.3degC")
    stored = nml2lut.store.save_channel(channel, tmp_path / "k")
    assert main(["curves", str(stored), "-o", str(out)]) == 0
    assert (out / "hh_k.png").is_file()


def test_plot_is_readable(tmp_path):
    from nml2lut.plots import plot_curves, sample_curves

    channel = nml2lut.load_channel(EXAMPLES / "hh_na.channel.nml", temperature="6.3degC")
    path = plot_curves(sample_curves(channel), tmp_path / "na.png")
    import matplotlib.image

    image = matplotlib.image.imread(path)
    assert image.shape[0] > 400 and image.shape[1] > 1000
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 50  # drawn, not blank


# ---------------------------------------------------------------- jLEMS (run only with Java and pyNeuroML)
def test_jlems_comparison_with_a_stand_in_for_jlems():
    channel = nml2lut.load_channel(EXAMPLES / "frac_ih.channel.nml", temperature="34degC")

    def fake(document, timeout, error=0.0):
        assert 'ionChannel="frac_ih"' in document and 'temperature="34.0 degC"' in document
        v = np.linspace(-0.1, 0.06, 1601)
        curves = channel.curves(v)
        columns = [np.linspace(0, 1, v.size), v]
        columns += [curves[gate][quantity] * (1 + error) for gate, quantity in jlems.recorded_curves(channel)]
        return np.column_stack(columns).astype(np.float32).astype(float)  # as jLEMS writes them

    assert jlems.compare(channel, EXAMPLES / "frac_ih.channel.nml", runner=fake)["status"] == "match"
    off = jlems.compare(channel, "x", runner=lambda d, t: fake(d, t, error=0.01))
    assert off["status"] == "mismatch" and {c["curve"] for c in off["curves"]} >= {"m/fast/tau"}

    def broken(document, timeout):
        raise RuntimeError("jLEMS failed (exit 1): no such component")

    assert jlems.compare(channel, "x", runner=broken) == {
        "status": "error",
        "message": "jLEMS failed (exit 1): no such component",
    }


def test_jlems_document_includes_the_channel(tmp_path):
    from nml2lut.parse import read_library

    channel = nml2lut.load_channel(EXAMPLES / "hh_na.channel.nml", temperature="6.3degC")
    document = tmp_path / "LEMS.xml"
    document.write_text(jlems.lems_document(channel, EXAMPLES / "hh_na.channel.nml", (-0.1, 0.06)))
    assert read_library(document).ids == ["hh_na"]  # a LEMS file nml2lut itself reads back
    available, why = jlems.availability()
    assert isinstance(available, bool) and "jLEMS" in why


# ---------------------------------------------------------------- the shared corpus
@pytest.mark.corpus
@pytest.mark.slow
@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"NeuroML2 corpus not found at {CORPUS} (only in the workspace)")
def test_corpus_converts_and_a_second_run_does_no_work(tmp_path, capsys):
    out = tmp_path / "out"
    start = time.monotonic()
    first_status = main(["convert", str(CORPUS), "-o", str(out), "--jobs", "2", "-q"])
    first_seconds = time.monotonic() - start
    first = json.loads((out / "report.json").read_text())
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "channels").rglob("*")}
    start = time.monotonic()
    second_status = main(["convert", str(CORPUS), "-o", str(out), "--jobs", "2", "-q"])
    second_seconds = time.monotonic() - start
    second = json.loads((out / "report.json").read_text())
    with capsys.disabled():
        summary, channels = first["summary"], first["summary"]["channels"]
        print(f"\ncorpus convert: {summary['files']['total']} files, {channels['total']} channels: "
              f"{channels['converted']} converted, {channels['failed']} failed {summary['failures_by_type']} "
              f"{summary['unsupported_features']}; first run {first_seconds:.1f} s, second {second_seconds:.1f} s "
              f"({second['summary']['channels']['up-to-date']} channels up to date)")  # fmt: skip
    assert first_status == second_status == (1 if channels["failed"] or summary["files"]["failed"] else 0)
    assert channels["converted"] >= 0.85 * channels["total"]
    assert summary["failures_by_category"].get("internal") is None
    assert {p: p.stat().st_mtime_ns for p in (out / "channels").rglob("*")} == mtimes
    assert second["summary"]["channels"]["converted"] == 0
    assert second["summary"]["channels"]["up-to-date"] == channels["converted"]
    assert all(f["up_to_date"] for f in second["files"] if f["status"] != "skipped")
