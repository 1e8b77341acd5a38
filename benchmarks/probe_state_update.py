"""probe_state_update: where model (a)'s cpp_standalone time goes, per code object.

Builds model (a) (`models.build_a`) with nml2lut's default and lut4brian's own
network in cpp_standalone with Brian2's profiling on, then derives copies of
nml2lut's project whose generated state updater is edited by hand-written
rules, each removing one piece of work:

* ``no_exprel``: the voltage's exponential-Euler factor ``nml2lut_exprel(...)``
  replaced by 1 (forward Euler for ``v``; the gates keep their tabulated steps);
* ``frozen_gates``: in addition, ``h`` and ``n`` not updated (only the
  ``m_inf`` lookup and the voltage's forward-Euler step remain);
* ``vectorised``: the same model as nml2lut's default, made vectorisable by
  gcc: ``#pragma GCC ivdep`` before Brian2's loop (gcc cannot otherwise prove
  that the table reads do not alias the state arrays), table reads as
  ``table[index]`` (a gather needs a base and an index) and the exponential
  factor without a branch (an exp by range reduction and a polynomial, a short
  series near 0, selected);
* ``vectorised_no_exprel``: ``vectorised`` with the voltage's factor replaced by 1;
* ``..._512``: the same compiled with ``-mprefer-vector-width=512`` (gcc's
  default on this kind of machine is 256-bit vectors).

``no_exprel`` and ``frozen_gates`` are *not* valid models (``frozen_gates``
hardly spikes); they bound what any rewrite of the per-neuron arithmetic can
save.  The ``vectorised`` copies show what vectorising Brian2's loop buys:
the table reads become gathers, one per column and neuron.  Every project is
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
RULES = ("no_exprel", "frozen_gates", "vectorised", "vectorised_512", "vectorised_no_exprel",
         "vectorised_no_exprel_512")  # fmt: skip


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
    if rule.startswith("vectorised"):
        source = _vectorisable(source, with_exprel=not rule.startswith("vectorised_no_exprel"))
    return source


_BRANCH_FREE_EXPREL = """
    static inline double nml2lut_exprel(const double x)
    {
        // exp(x) by range reduction (x = k ln2 + r) and a degree-11 Taylor polynomial, 2^k from the exponent bits
        const double xc = x < -700.0 ? -700.0 : (x > 700.0 ? 700.0 : x);
        const double kf = nearbyint(xc * 1.4426950408889634);
        const double r = (xc - kf * 0.6931471803691238) - kf * 1.9082149292705877e-10;
        double q = 1.0/39916800.0;
        q = q * r + 1.0/3628800.0; q = q * r + 1.0/362880.0; q = q * r + 1.0/40320.0; q = q * r + 1.0/5040.0;
        q = q * r + 1.0/720.0; q = q * r + 1.0/120.0; q = q * r + 1.0/24.0; q = q * r + 1.0/6.0; q = q * r + 0.5;
        const double expm1_r = r + r * r * q;
        const long long bits = ((long long)kf + 1023) << 52;
        double scale;
        __builtin_memcpy(&scale, &bits, 8);
        const double expm1_x = scale * expm1_r + (scale - 1.0);
        const double series = 1.0 + x * (0.5 + x * (1.0/6.0 + x * (1.0/24.0)));
        return (x > -1e-3 && x < 1e-3) ? series : expm1_x / xc;
    }
"""


def _vectorisable(source: str, with_exprel: bool) -> str:
    """nml2lut's state updater as gcc vectorises it (see the module docstring)."""
    loop = "    for(int _idx=0; _idx<_N; _idx++)"
    if source.count(loop) != 1:
        raise RuntimeError("expected one neuron loop in the state updater")
    source = source.replace(loop, "    #pragma GCC ivdep\n" + loop)
    source, count = re.subn(
        r"const double \* r = (_namespace\w+) \+ i_x \* (\d+);\n(\s*)"
        r"return r\[(nml2lut_places_\w+\[k\]|2 \* k)\] \+ f_x \* r\[\4 \+ 1\];",
        r"const int o = i_x * \2 + \4;\n\3return \1[o] + f_x * \1[o + 1];",
        source,
    )
    if count == 0:
        raise RuntimeError("found no 1-D table read to rewrite in the state updater")
    start = source.index("    static inline double nml2lut_exprel")
    end = source.index("\n    }\n", start) + len("\n    }\n")
    exprel = (
        _BRANCH_FREE_EXPREL
        if with_exprel
        else "\n    static inline double nml2lut_exprel(const double x) { return 1.0; }\n"
    )
    return source[:start] + exprel.lstrip("\n") + source[end:]


def _derive(project: Path, rule: str, root: Path) -> Path:
    copy = root / rule / "project"
    shutil.copytree(project, copy, symlinks=True)
    path = copy / STATE_UPDATER
    path.write_text(_edit(path.read_text(), rule.removesuffix("_512")))
    if rule.endswith("_512"):
        makefile = copy / "makefile"
        text, count = re.subn(
            r"^(OPTIMISATIONS = .*)$", r"\1 -mprefer-vector-width=512", makefile.read_text(), flags=re.M
        )
        if count != 1:
            raise RuntimeError("expected one OPTIMISATIONS line in the makefile")
        makefile.write_text(text)
    subprocess.run(["make", "-s"], cwd=copy, check=True, capture_output=True)
    _check_vectorised(copy, rule)
    return copy


def _check_vectorised(copy: Path, rule: str) -> None:
    """A ``vectorised`` copy whose loop gcc did not vectorise would measure nothing: refuse it."""
    if not rule.startswith("vectorised"):
        return
    flags = re.search(r"^OPTIMISATIONS = (.*)$", (copy / "makefile").read_text(), flags=re.M).group(1)
    report = subprocess.run(
        ["sh", "-c", f"g++ -c {flags} -I. {STATE_UPDATER} -o /dev/null -fopt-info-vec-optimized"],
        cwd=copy, capture_output=True, text=True, check=True,
    )  # fmt: skip
    if "loop vectorized" not in report.stderr:
        raise RuntimeError(f"gcc did not vectorise the neuron loop of the {rule} copy")


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
        for rule in RULES:
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
              f"profiled seconds: median of the per-round sums, then per code object, min / median")  # fmt: skip
        totals = {name: statistics.median(sum(sample.values()) for sample in samples) for name, samples in runs.items()}
        for name, samples in runs.items():
            cells = []
            for code_object in samples[0]:
                values = [sample[code_object] for sample in samples]
                short = code_object.replace("_codeobject", "").replace("cells_", "")
                cells.append(f"{short} {min(values):.3f}/{statistics.median(values):.3f}")
            total = f"all {totals[name]:.3f}"
            if "lut4brian" in totals:  # how many times faster than lut4brian, from the medians of the per-round sums
                total += f" ({totals['lut4brian'] / totals[name]:.2f}x lut4brian)"
            print(f"  {name:24s} {total}; " + ", ".join(cells))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def _mkdir(path: Path) -> Path:
    os.makedirs(path)
    return path


if __name__ == "__main__":
    sys.exit(main())
