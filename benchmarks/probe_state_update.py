"""probe_state_update: where model (a)'s cpp_standalone time goes, per code object.

Builds model (a) (`models.build_a`) with nml2lut's default and lut4brian's own
network in cpp_standalone with Brian2's profiling on, then derives copies of
nml2lut's project whose generated state updater is edited by hand-written
rules, each removing one piece of work:

* ``no_exprel``: the voltage's exponential-Euler factor ``nml2lut_exprel(...)``
  replaced by 1 (forward Euler for ``v``; the gates keep their tabulated steps);
* ``frozen_gates``: in addition, ``h`` and ``n`` not updated (only the
  ``m_inf`` lookup and the voltage's forward-Euler step remain).

The edited copies are *not* valid models (``frozen_gates`` hardly spikes); they
bound what any rewrite of the per-neuron arithmetic can save.  Every project is
run ``--rounds`` times, alternating, and the state updater's profiled time
(and the other code objects') is reported as minimum and median.

    python benchmarks/probe_state_update.py [--duration 1.0] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

STATE_UPDATER = "code_objects/cells_stateupdater_codeobject.cpp"


def _build(variant: str, neurons: int, duration: float, workdir: Path) -> Path:
    """Build (and run once) one profiled project in a fresh process; return its directory."""
    code = f"""
import os, sys
sys.path.insert(0, {str(HERE)!r})
os.chdir({str(workdir)!r})
import brian2 as b2
b2.prefs.logging.file_log = False
project = {str(workdir / "project")!r}
b2.set_device("cpp_standalone", directory=project, build_on_run=False)
import models
if {variant!r} == "lut4brian":
    import lut4brian_network
    objects, _ = lut4brian_network.build({neurons})
else:
    objects, _, _ = models.build_a({neurons}, models.VARIANTS[{variant!r}])
net = b2.Network(objects)
net.run({duration!r} * b2.second, profile=True)
b2.device.build(directory=project, compile=True, run=True)
"""
    subprocess.run([sys.executable, "-c", code], cwd=workdir, check=True, capture_output=True)
    return workdir / "project"


def _edit(source: str, rule: str) -> str:
    """One hand-written edit of nml2lut's generated state updater (see the module docstring)."""
    if rule in ("no_exprel", "frozen_gates"):
        source, count = re.subn(r"\* nml2lut_exprel\([^()]*\)", "* 1.0", source)
        if count != 1:
            raise RuntimeError(f"expected one nml2lut_exprel call in the state updater, found {count}")
    if rule == "frozen_gates":
        for gate in ("h_Na", "n_K"):
            source, count = re.subn(rf"const double _{gate} = .*;", f"const double _{gate} = {gate};", source)
            if count != 1:
                raise RuntimeError(f"expected one update of {gate} in the state updater, found {count}")
    return source


def _derive(project: Path, rule: str, root: Path) -> Path:
    copy = root / rule / "project"
    shutil.copytree(project, copy, symlinks=True)
    path = copy / STATE_UPDATER
    path.write_text(_edit(path.read_text(), rule))
    subprocess.run(["make", "-s"], cwd=copy, check=True, capture_output=True)
    return copy


def _profile(project: Path) -> dict[str, float]:
    subprocess.run(["./main", "--results_dir", "results/"], cwd=project, check=True, capture_output=True)
    times = {}
    for line in (project / "results" / "profiling_info.txt").read_text().splitlines():
        name, seconds = line.split("\t")
        times[name] = float(seconds)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=1.0, help="simulated seconds (default 1)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    import lut4brian_network

    root = Path(tempfile.mkdtemp(prefix="probe-a-"))
    try:
        projects = {"lut": _build("lut", args.neurons, args.duration, _mkdir(root / "lut"))}
        for rule in ("no_exprel", "frozen_gates"):
            projects[rule] = _derive(projects["lut"], rule, root)
        ok, reason = lut4brian_network.available()
        if ok:
            projects["lut4brian"] = _build("lut4brian", args.neurons, args.duration, _mkdir(root / "lut4brian"))
        else:
            print(f"lut4brian: {reason}")
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in projects}
        for _ in range(args.rounds):
            for name, project in projects.items():  # alternate: load on a shared machine drifts
                runs[name].append(_profile(project))
        print(f"model (a): {args.neurons} cells, {args.duration} s simulated, {args.rounds} rounds; "
              f"profiled seconds per code object, min / median")  # fmt: skip
        for name, samples in runs.items():
            cells = []
            for code_object in samples[0]:
                values = [sample[code_object] for sample in samples]
                short = code_object.replace("_codeobject", "").replace("cells_", "")
                cells.append(f"{short} {min(values):.3f}/{statistics.median(values):.3f}")
            print(f"  {name:13s} " + ", ".join(cells))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def _mkdir(path: Path) -> Path:
    os.makedirs(path)
    return path


if __name__ == "__main__":
    sys.exit(main())
