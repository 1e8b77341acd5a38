"""Batch conversion: discovery, outputs that load like load_channel, reruns that do nothing, resumption,
parallel and dask runs identical to serial ones, and workers that time out, run out of memory or die."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import nml2lut
from nml2lut import workers
from nml2lut.batch import RECORD, convert
from nml2lut.report import error
from nml2lut.sources import BatchError, Options, channel_stems, content_hash, discover
from tests.helpers import HH_K, neuroml

EXAMPLES = Path(__file__).resolve().parents[1] / "example_channels"
TWO = HH_K + HH_K.replace('id="k"', 'id="k2"').replace("0.125per_ms", "0.1per_ms")


def _strip(report):
    """A report without what differs between runs of the same work: times, and up-to-date flags."""
    if isinstance(report, dict):
        return {k: _strip(v) for k, v in report.items() if k not in ("seconds", "output", "inputs", "root")}
    if isinstance(report, list):
        return [_strip(v) for v in report]
    return report


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _write(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(neuroml(body), encoding="utf-8")
    return path


def _channels(report):
    return {(f["path"], c["id"]): c for f in report["files"] for c in f["channels"]}


# ---------------------------------------------------------------- discovery and names
def test_discover_lists_every_file_with_a_reason(tmp_path):
    _write(tmp_path, "a/chan.nml", HH_K)
    (tmp_path / "a" / "notes.txt").write_text("hello")
    (tmp_path / "a" / "pom.xml").write_text("<?xml version='1.0'?>\n<!-- c -->\n<project/>")
    (tmp_path / "a" / "lems.xml").write_text("<?xml version='1.0'?>\n<Lems/>")
    (tmp_path / "a" / "broken.xml").write_text("not xml at all")
    _write(tmp_path, ".git/hidden.nml", HH_K)
    _write(tmp_path, "out/old.nml", HH_K)
    (tmp_path / "link").symlink_to(tmp_path / "a", target_is_directory=True)
    found = discover([tmp_path], exclude=[tmp_path / "out"])
    entries = {e.rel: e.skip for e in found.entries}
    assert entries == {
        "a/broken.xml": "",  # the parser will say what is wrong with it
        "a/chan.nml": "",
        "a/lems.xml": "",
        "a/notes.txt": "not a NeuroML file name (.txt)",
        "a/pom.xml": "XML whose root <project> is not <neuroml> or <Lems>",
    }
    assert found.skipped_directories == [
        {"path": ".git", "reason": "hidden directory"},
        {"path": "link", "reason": "symbolic link to a directory (not followed)"},
        {"path": "out", "reason": "the output directory"},
    ]
    with pytest.raises(BatchError, match="input not found: .*nowhere"):
        discover([tmp_path / "nowhere"])


def test_channel_stems_are_safe_and_unique():
    stems = channel_stems(["Na", "na", "../../etc/x", "CON", "ok_id-1", ""])
    assert stems[0] == "Na" and stems[4] == "ok_id-1"
    assert len({s.lower() for s in stems}) == len(stems)
    assert all("/" not in s and not s.startswith(".") for s in stems)
    assert stems[2].startswith("______etc_x-") and stems[3].startswith("CON-")


def test_content_hash_covers_includes_and_options(tmp_path):
    main = _write(tmp_path, "main.nml", '<include href="lib.nml"/>')
    lib = _write(tmp_path, "lib.nml", HH_K)
    first = content_hash(main, [main, lib], Options())
    assert first == content_hash(main, [lib, main], Options())
    assert first != content_hash(main, [main, lib], Options(temperature="6.3degC"))
    lib.write_text(lib.read_text() + "<!-- changed -->")
    assert first != content_hash(main, [main, lib], Options())


# ---------------------------------------------------------------- converting
@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    return out, convert([EXAMPLES], out, jobs=2)


def test_report_schema(converted):
    out, report = converted
    assert (out / "report.json").is_file() and (out / "report.md").is_file()
    import json

    assert json.loads((out / "report.json").read_text()) == report
    assert report["summary"]["channels"] == {"total": 14, "converted": 14, "up-to-date": 0, "failed": 0}
    assert [f["path"] for f in report["files"]] == sorted(f["path"] for f in report["files"])
    for f in report["files"]:
        assert f["status"] in ("converted", "failed", "skipped")
        assert f["error"] is None
        for c in f["channels"]:
            assert set(c) >= {"id", "status", "error", "output"} and c["status"] == "converted"
            assert (out / c["output"]).is_file()
    skipped = [f for f in report["files"] if f["status"] == "skipped"]
    assert [(f["path"], f["reason"]) for f in skipped] == [
        ("README.md", "not a NeuroML file name (.md)"), ("cells/README.md", "not a NeuroML file name (.md)")]
    markdown = (out / "report.md").read_text()
    assert "| hh_na.channel.nml | hh_na | converted |" in markdown


def test_outputs_load_like_load_channel(converted):
    out, report = converted
    v = np.linspace(-0.1, 0.06, 777)
    for (path, ident), channel in _channels(report).items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = nml2lut.load_channel(EXAMPLES / path, ident, temperature="34degC")
        loaded = nml2lut.store.load_tables(out / channel["output"])
        assert loaded.model == expected.model and str(loaded.equations) == str(expected.equations)
        conc = 1e-3 if expected.tables2d is not None else None  # kca reads the calcium concentration
        for gate, curves in expected.curves(v, conc).items():
            for quantity, values in curves.items():
                assert np.array_equal(loaded.curves(v, conc)[gate][quantity], values)


def test_rerun_does_no_work(converted):
    out, first = converted
    before = {p: p.stat().st_mtime_ns for p in (out / "channels").rglob("*")}
    second = convert([EXAMPLES], out, jobs=2)
    assert {p: p.stat().st_mtime_ns for p in (out / "channels").rglob("*")} == before
    assert second["summary"]["files"]["up-to-date"] == 17  # 12 channel files, two cells and three LEMS files
    assert second["summary"]["channels"] == {"total": 14, "converted": 0, "up-to-date": 14, "failed": 0}
    assert all(f["up_to_date"] for f in second["files"] if f["status"] != "skipped")
    assert second["seconds"] < 10


def test_jobs_2_gives_the_same_as_jobs_1(converted, tmp_path):
    out, report = converted
    serial = convert([EXAMPLES], tmp_path, jobs=1)
    assert _strip(serial) == _strip(report)
    assert _tree(tmp_path / "channels") == _tree(out / "channels")


def test_dask_local_cluster_gives_the_same(converted, tmp_path):
    distributed = pytest.importorskip("distributed")
    out, report = converted
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        with distributed.Client(cluster) as client:
            on_dask = convert([EXAMPLES], tmp_path, scheduler=client)
    assert _strip(on_dask) == _strip(report)
    assert _tree(tmp_path / "channels") == _tree(out / "channels")


def test_changed_file_alone_is_converted_again(tmp_path):
    library = tmp_path / "lib"
    for name in ("a", "b", "c"):
        _write(library, f"{name}.nml", HH_K.replace('id="k"', f'id="{name}"'))
    convert([library], tmp_path / "out")
    (library / "b.nml").write_text((library / "b.nml").read_text().replace("0.125per_ms", "0.13per_ms"))
    report = convert([library], tmp_path / "out")
    assert {f["path"]: f["up_to_date"] for f in report["files"]} == {"a.nml": True, "b.nml": False, "c.nml": True}
    assert _channels(report)[("b.nml", "b")]["status"] == "converted"


def test_interrupted_run_resumes(tmp_path):
    library = tmp_path / "lib"
    _write(library, "two.nml", TWO)
    _write(library, "one.nml", HH_K)
    out = tmp_path / "out"
    first = convert([library], out)
    # As if killed: one channel of a file written, the other not; another file's record missing; a temporary left.
    (out / "channels/two.nml/k2.json").unlink()
    (out / "channels/one.nml" / RECORD).unlink()
    (out / "channels/two.nml/.nml2lut-tmp-x.npz").write_bytes(b"partial")
    report = convert([library], out)
    channels = _channels(report)
    assert channels[("two.nml", "k")]["status"] == "up-to-date"
    assert channels[("two.nml", "k")]["max_error"] == _channels(first)[("two.nml", "k")]["max_error"]
    assert channels[("two.nml", "k2")]["status"] == "converted"
    assert channels[("one.nml", "k")]["status"] == "up-to-date"  # its outputs were intact
    assert not list((out / "channels/two.nml").glob(".nml2lut-tmp-*"))
    assert convert([library], out)["summary"]["channels"]["up-to-date"] == 3


def test_killed_run_resumes(tmp_path):
    library = tmp_path / "lib"
    for k in range(12):
        _write(library, f"c{k:02d}.nml", HH_K.replace('id="k"', f'id="k{k}"'))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "nml2lut.cli", "convert", str(library), "-o", str(out), "-j", "1"]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list(out.glob(f"channels/*/{RECORD}"))) < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done = {p.parent.name for p in out.glob(f"channels/*/{RECORD}")}
    assert 3 <= len(done) < 12
    report = convert([library], out)
    assert report["summary"]["channels"]["failed"] == 0
    assert {f["path"] for f in report["files"] if f["up_to_date"]} >= done
    assert sum(not f["up_to_date"] for f in report["files"]) == 12 - len(
        {f["path"] for f in report["files"] if f["up_to_date"]}
    )


def test_channels_of_included_files_are_converted_where_defined(tmp_path):
    _write(tmp_path, "lib/chan.nml", HH_K)
    _write(tmp_path, "cells/cell.nml", '<include href="../lib/chan.nml"/>')
    report = convert([tmp_path / "cells"], tmp_path / "out")
    files = {f["path"]: f for f in report["files"]}
    assert files["cell.nml"]["channels"] == [] and "1 in included files" in files["cell.nml"]["note"]
    external = next(f for f in report["files"] if f["path"].endswith("lib/chan.nml"))
    assert external["via"] == "cell.nml" and external["channels"][0]["status"] == "converted"
    assert (tmp_path / "out" / external["channels"][0]["output"]).is_file()
    assert external["channels"][0]["output"].startswith("external/")
    # Given the whole tree, each channel is converted once, from its own file.
    whole = convert([tmp_path / "cells", tmp_path / "lib"], tmp_path / "out2")
    assert sorted(_channels(whole)) == [("lib/chan.nml", "k")]


def test_removed_channel_outputs_are_removed(tmp_path):
    path = _write(tmp_path / "lib", "two.nml", TWO)
    out = tmp_path / "out"
    convert([tmp_path / "lib"], out)
    assert (out / "channels/two.nml/k2.npz").is_file()
    path.write_text(neuroml(HH_K))
    convert([tmp_path / "lib"], out)
    assert sorted(p.name for p in (out / "channels/two.nml").iterdir()) == [RECORD, "k.json", "k.npz"]


def test_channel_failures_are_kept_and_not_redone(tmp_path):
    _write(
        tmp_path / "lib",
        "q10.nml",
        HH_K.replace("<gateHHrates", "<gateHHrates").replace(
            "<forwardRate",
            '<q10Settings type="q10ExpTemp" q10Factor="3" experimentalTemp="6.3 degC"/>\n    <forwardRate',
        ),
    )
    _write(tmp_path / "lib", "good.nml", HH_K)
    first = convert([tmp_path / "lib"], tmp_path / "out", options=Options(temperature=None))
    failed = _channels(first)[("q10.nml", "k")]
    assert failed["status"] == "failed" and failed["error"]["type"] == "ModelError" and failed["output"] is None
    assert "temperature" in failed["error"]["message"]
    second = convert([tmp_path / "lib"], tmp_path / "out", options=Options(temperature=None))
    assert all(f["up_to_date"] for f in second["files"])
    assert _channels(second)[("q10.nml", "k")]["error"] == failed["error"]
    assert _channels(convert([tmp_path / "lib"], tmp_path / "out"))[("q10.nml", "k")]["status"] == "converted"


def test_file_without_channels_is_converted_with_a_note(tmp_path):
    _write(tmp_path, "empty.nml", "<notes>nothing here</notes>")
    report = convert([tmp_path / "empty.nml"], tmp_path / "out")
    (entry,) = report["files"]
    assert entry["status"] == "converted" and entry["channels"] == [] and entry["note"] == "defines no channels"


def test_output_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "out").write_text("")
    with pytest.raises(BatchError, match="not a directory"):
        convert([EXAMPLES / "hh_k.channel.nml"], tmp_path / "out")


def test_output_inside_the_input_is_not_read(tmp_path):
    shutil.copy(EXAMPLES / "hh_k.channel.nml", tmp_path)
    convert([tmp_path], tmp_path / "out")
    report = convert([tmp_path], tmp_path / "out")
    assert [f["path"] for f in report["files"]] == ["hh_k.channel.nml"]
    assert report["skipped_directories"] == [{"path": "out", "reason": "the output directory"}]


# ---------------------------------------------------------------- workers: limits and deaths
class _Task:
    """Test tasks, run in worker processes (so defined at module level, importable there)."""

    def __init__(self, kind: str):
        self.kind = kind

    def failure(self, error):
        return ("failed", self.kind, error["type"])

    def run(self):
        if self.kind == "sleep":
            time.sleep(60)
        elif self.kind == "deaf":  # ignores the soft time limit: must be killed
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(60)
        elif self.kind == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        elif self.kind == "hog":
            return ("ok", len(bytearray(8 * 1024**3)))
        elif self.kind == "raise":
            raise KeyError("a bug")
        return ("ok", self.kind)


def _run(kinds, **kwargs):
    results = {}
    workers.run_tasks([_Task(k) for k in kinds], lambda t, o: results.update({t.kind: o}) or [], **kwargs)
    return results


def test_workers_classify_timeouts_memory_deaths_and_bugs(monkeypatch):
    monkeypatch.setattr(workers, "GRACE", 2.0)
    start = time.monotonic()
    results = _run(["ok", "sleep", "deaf", "die", "hog", "raise", "ok2"], jobs=2, timeout=2.0, memory=2 * 1024**3)
    assert results == {
        "ok": ("ok", "ok"),
        "ok2": ("ok", "ok2"),
        "sleep": ("failed", "sleep", "TimeoutError"),
        "deaf": ("failed", "deaf", "TimeoutError"),
        "die": ("failed", "die", "WorkerCrashError"),
        "hog": ("failed", "hog", "MemoryError"),
        "raise": ("failed", "raise", "KeyError"),
    }
    assert time.monotonic() - start < 60


def test_helper_subprocess_classifies_the_same():
    results = {
        kind: workers.run_in_helper(_Task(kind), 2.0, 2 * 1024**3) for kind in ("ok", "sleep", "die", "hog", "ok2")
    }
    assert results == {
        "ok": ("ok", "ok"),
        "sleep": ("failed", "sleep", "TimeoutError"),
        "die": ("failed", "die", "WorkerCrashError"),
        "hog": ("failed", "hog", "MemoryError"),
        "ok2": ("ok", "ok2"),
    }


def test_error_categories_are_checked():
    with pytest.raises(ValueError, match="unknown failure category"):
        error("X", "y", "nonsense")
