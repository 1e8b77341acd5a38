"""kernel: model (b) as one plain C loop, with nml2lut's tables: the practical speed limit.

The C file is generated from the loaded channels (so it follows `models.CELL_B`
and whatever gates the NeuroML files have), compiled with gcc and the flags
Brian2 uses (``-O3 -ffast-math -fno-finite-math-only -march=native``), and run
on tables exported from nml2lut.  Everything lives in a temporary directory:
no file is left in the repository or the working directory.

Per neuron and step the kernel does what a good hand-written simulator does:

* one position on one voltage grid (clamped; NaN reads the first row), shared
  by every table of the cell;
* for each dynamic gate, ``x = a(v)*x + b(v)`` with the exponential-Euler
  factors ``a = exp(-dt/tau)`` and ``b = inf*(1 - a)`` tabulated for this dt
  (value and slope interleaved per grid point, all columns of one point
  adjacent), so no ``exp`` per gate; instantaneous gates read ``inf(v)``;
* the currents from the old gate values, and ``v`` by exponential Euler (one
  ``exp`` per neuron-step; Brian2's ``exponential_euler`` does the same for
  ``v``) or by forward Euler;
* threshold and refractoriness as Brian2 does them for
  ``threshold = refractory = "v > theta"``.

State is stored as Brian2 stores it (one array per variable); conductances
and reversal potentials, per-neuron parameters in Brian2, are constants here.

The tables come from nml2lut: the channels are loaded in ``lut`` mode and
their curves (``LoadedChannel.curves``, the interpolated tables exactly as
the Brian2 model sees them) are sampled on one grid as fine as the finest
channel grid.

    python -m c_reference.kernel [--neurons 10000] [--duration 1000] [--repeats 3]   (from benchmarks/)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).resolve().parents[1]
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import models  # noqa: E402

CFLAGS = ["-O3", "-ffast-math", "-fno-finite-math-only", "-march=native", "-std=c11"]
V_RANGE = (-0.100, 0.060)  # V, nml2lut's default table range


@dataclass
class Layout:
    """The cell as the kernel sees it."""

    columns: list[np.ndarray]  # one curve per table column, on the common grid
    states: list[tuple[str, float]]  # (name, initial value)
    update_lines: list[str]  # C statements updating the states
    current_terms: list[tuple[str, float, float]]  # (open fraction C expression, g, E)
    locals_: list[str]  # C declarations computed before the currents


def _column(layout: Layout, curve: np.ndarray) -> str:
    """Register a table column; return the C expression interpolating it."""
    k = len(layout.columns)
    layout.columns.append(np.asarray(curve, dtype=float))
    return f"(r[{2 * k}] + w*r[{2 * k + 1}])"


def _power(name: str, n: int) -> str:
    return "*".join([name] * n)


def layout_cell(channels, specs, v: np.ndarray, dt: float, v0: float) -> Layout:
    """Tables, states and C statements of one cell, from nml2lut's loaded channels (``lut`` mode)."""
    layout = Layout([], [], [], [], [])
    for channel, spec in zip(channels, specs, strict=True):
        model = channel.model
        if model.kind == "passive":
            layout.current_terms.append(("1.0", spec.g, spec.E))
            continue
        curves = channel.curves(v)
        start = channel.curves(np.array([v0]))
        factors = []
        for gate in model.gates:
            keys = [f"{gate.id}/{s.id}" for s in gate.subgates] if gate.kind == "fractional" else [gate.id]
            if gate.kind == "kinetic":
                raise NotImplementedError(f"{spec.name}: kinetic schemes are not in the C reference")
            values = []
            for key in keys:
                name = f"{spec.name}_{key.replace('/', '_')}"
                if gate.kind == "instantaneous":
                    layout.locals_.append(f"const double {name} = {_column(layout, curves[key]['inf'])};")
                    values.append(name)
                    continue
                a = np.exp(-dt / curves[key]["tau"])
                b = curves[key]["inf"] * (1.0 - a)
                s = len(layout.states)
                layout.states.append((name, float(start[key]["inf"][0])))
                layout.locals_.append(f"const double {name} = S{s}[i];")
                layout.update_lines.append(f"S{s}[i] = {_column(layout, a)}*{name} + {_column(layout, b)};")
                values.append(name)
            if gate.kind == "fractional":
                fractions = [sub.fraction for sub in gate.subgates]
                value = "(" + " + ".join(f"{f!r}*{x}" for f, x in zip(fractions, values, strict=True)) + ")"
                layout.locals_.append(f"const double {spec.name}_{gate.id} = {value};")
                values = [f"{spec.name}_{gate.id}"]
            factors.append(_power(values[0], gate.instances))
        scale = float(model.conductance_scale.value)
        if scale != 1.0:
            factors.insert(0, repr(scale))
        layout.current_terms.append(("*".join(factors) or "1.0", spec.g, spec.E))
    return layout


def common_grid(channels) -> tuple[float, float, int]:
    """One grid over `V_RANGE` as fine as the finest channel grid: (v_min, step, n)."""
    finest = min(c.grid.step for c in channels if c.grid is not None)
    n = math.ceil((V_RANGE[1] - V_RANGE[0]) / finest - 1e-9) + 1
    return V_RANGE[0], (V_RANGE[1] - V_RANGE[0]) / (n - 1), n


def interleaved(columns: list[np.ndarray]) -> np.ndarray:
    """(value, slope to the next point) per point and column, all columns of one point adjacent."""
    values = np.column_stack(columns)
    slopes = np.zeros_like(values)
    slopes[:-1] = np.diff(values, axis=0)
    return np.ascontiguousarray(np.stack([values, slopes], axis=2).reshape(values.shape[0], -1))


_TEMPLATE = """\
/* Generated by benchmarks/c_reference/kernel.py: model (b), {n_states} gate states, {n_columns} table columns. */
#define _POSIX_C_SOURCE 199309L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define N {neurons}
#define NSTEPS {steps}
#define ROW {row}
static const double V_MIN = {v_min!r}, INV_STEP = {inv_step!r}, LAST = {last!r};
static const double DT = {dt!r}, CM = {cm!r}, THETA = {theta!r}, V0 = {v0!r};
static const double I_MIN = {i_min!r}, I_SPAN = {i_span!r};

static double now(void) {{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}}

int main(int argc, char **argv) {{
    if (argc != 4) {{ fprintf(stderr, "usage: %s TABLE REPEATS SPIKES\\n", argv[0]); return 2; }}
    const int repeats = atoi(argv[2]);
    double *T = malloc(sizeof(double) * {n_points} * ROW);
    FILE *f = fopen(argv[1], "rb");
    if (!f || fread(T, sizeof(double), {n_points} * ROW, f) != (size_t){n_points} * ROW) {{
        fprintf(stderr, "cannot read %s\\n", argv[1]); return 1;
    }}
    fclose(f);
    double *restrict V = malloc(sizeof(double) * N), *restrict I = malloc(sizeof(double) * N);
    char *restrict ready = malloc(N);  /* Brian2's not_refractory */
{alloc}
    size_t capacity = 1 << 20, count = 0;
    int32_t *spike_i = malloc(sizeof(int32_t) * capacity);
    double *spike_t = malloc(sizeof(double) * capacity);
    printf("{{\\"seconds\\": [");
    for (int rep = 0; rep < repeats; rep++) {{
        for (int i = 0; i < N; i++) {{
            V[i] = V0; ready[i] = 1; I[i] = I_MIN + I_SPAN * i / {denominator};
{init}
        }}
        count = 0;
        const double start = now();
        for (long step = 0; step < NSTEPS; step++) {{
            const double t = step * DT;
            for (int i = 0; i < N; i++) {{  /* refractoriness and state update, as Brian2's state updater */
                const double v = V[i];
                if (!ready[i] && !(v > THETA)) ready[i] = 1;
                double p = (v - V_MIN) * INV_STEP;
                if (!(p > 0.0)) p = 0.0;  /* also NaN */
                if (p > LAST) p = LAST;
                const int k = (int)p;
                const double w = p - k;
                const double *restrict r = T + (long)k * ROW;
{locals_}
                const double G = {conductance};
                const double GE = {driving} + I[i];
{updates}
{v_update}
                V[i] = vn;
            }}
            for (int i = 0; i < N; i++) {{  /* the threshold, a separate loop as in Brian2 */
                if (V[i] > THETA && ready[i]) {{
                    ready[i] = 0;
                    if (count == capacity) {{
                        capacity *= 2;
                        spike_i = realloc(spike_i, sizeof(int32_t) * capacity);
                        spike_t = realloc(spike_t, sizeof(double) * capacity);
                    }}
                    spike_i[count] = i; spike_t[count] = t; count++;
                }}
            }}
        }}
        printf(rep ? ", %.6f" : "%.6f", now() - start);
    }}
    printf("], \\"spikes\\": %zu}}\\n", count);
    f = fopen(argv[3], "wb");
    int64_t n64 = (int64_t)count;
    fwrite(&n64, sizeof n64, 1, f);
    fwrite(spike_i, sizeof(int32_t), count, f);
    fwrite(spike_t, sizeof(double), count, f);
    fclose(f);
    return 0;
}}
"""

_V_UPDATE = {
    "exponential_euler": "                const double v_inf = GE / G;\n"
    "                const double vn = v_inf + (v - v_inf) * exp(-DT * G / CM);",
    "euler": "                const double vn = v + DT * (GE - G * v) / CM;",
}


def generate(layout: Layout, grid: tuple[float, float, int], *, neurons: int, steps: int, dt: float,
             integrator: str) -> str:  # fmt: skip
    """The C source of the kernel."""
    v_min, step, n_points = grid
    terms = [(f"{g!r}*{fraction}", e) for fraction, g, e in layout.current_terms]
    indent = " " * 16
    return _TEMPLATE.format(
        n_states=len(layout.states), n_columns=len(layout.columns), neurons=neurons, steps=steps,
        row=2 * len(layout.columns), v_min=v_min, inv_step=1.0 / step, last=float(n_points - 1), dt=dt,
        cm=models.B["Cm"], theta=models.B["threshold"], v0=models.B["v0"], i_min=models.B["I_min"],
        i_span=models.B["I_max"] - models.B["I_min"], denominator=f"{max(neurons - 1, 1)}.0", n_points=n_points,
        alloc="\n".join(f"    double *restrict S{s} = malloc(sizeof(double) * N);" for s in range(len(layout.states))),
        init="\n".join(f"            S{s}[i] = {x0!r};" for s, (_, x0) in enumerate(layout.states)),
        locals_="\n".join(indent + line for line in layout.locals_),
        conductance=" + ".join(term for term, _ in terms),
        driving=" + ".join(f"{term}*{e!r}" for term, e in terms),
        updates="\n".join(indent + line for line in layout.update_lines),
        v_update=_V_UPDATE[integrator],
    )  # fmt: skip


def compile_kernel(source: str, workdir: Path) -> Path:
    """Write and compile the kernel in ``workdir``; return the executable."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise RuntimeError("no C compiler (gcc or cc) on PATH")
    c_file, exe = workdir / "kernel.c", workdir / "kernel"
    c_file.write_text(source)
    done = subprocess.run([gcc, *CFLAGS, "-o", str(exe), str(c_file), "-lm"], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{gcc} failed on the generated kernel:\n{done.stderr}")
    return exe


def run(neurons: int, duration: float, repeats: int = 3, integrator: str = "exponential_euler",
        workdir: str | os.PathLike | None = None) -> dict:  # fmt: skip
    """Build and run the kernel; return run times (s, one per repeat), spikes ``i``/``t`` and grid facts."""
    dt = models.B["dt"]
    with tempfile.TemporaryDirectory(prefix="nml2lut-cref-", dir=workdir) as tmp:
        tmp = Path(tmp)
        import brian2 as b2

        b2.defaultclock.dt = dt * b2.second
        channels = models.load_cell(models.CELL_B, models.VARIANTS[models.DEFAULT])
        grid = common_grid(channels)
        v = grid[0] + grid[1] * np.arange(grid[2])
        layout = layout_cell(channels, models.CELL_B, v, dt, models.B["v0"])
        table = interleaved(layout.columns)
        table.tofile(tmp / "table.bin")
        steps = int(round(duration / dt))
        exe = compile_kernel(generate(layout, grid, neurons=neurons, steps=steps, dt=dt, integrator=integrator), tmp)
        out = subprocess.run([str(exe), str(tmp / "table.bin"), str(repeats), str(tmp / "spikes.bin")],
                             check=True, capture_output=True, text=True).stdout  # fmt: skip
        report = json.loads(out)
        raw = (tmp / "spikes.bin").read_bytes()
        count = int(np.frombuffer(raw[:8], dtype=np.int64)[0])
        i = np.frombuffer(raw[8 : 8 + 4 * count], dtype=np.int32)
        t = np.frombuffer(raw[8 + 4 * count :], dtype=np.float64)
    return {
        "seconds": report["seconds"], "i": i.tolist(), "t": t.tolist(), "grid_points": grid[2],
        "grid_step_mV": grid[1] * 1e3, "states": len(layout.states), "columns": len(layout.columns),
        "table_bytes": int(table.nbytes), "integrator": integrator,
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=models.B["neurons"])
    parser.add_argument("--duration", type=float, default=models.B["duration"] * 1e3, help="ms")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--integrator", choices=sorted(_V_UPDATE), default="exponential_euler")
    parser.add_argument("--source", action="store_true", help="print the generated C file and exit")
    args = parser.parse_args()
    if args.source:
        import brian2 as b2

        dt = models.B["dt"]
        b2.defaultclock.dt = dt * b2.second
        channels = models.load_cell(models.CELL_B, models.VARIANTS[models.DEFAULT])
        grid = common_grid(channels)
        layout = layout_cell(channels, models.CELL_B, grid[0] + grid[1] * np.arange(grid[2]), dt, models.B["v0"])
        steps = int(round(args.duration * 1e-3 / dt))
        print(generate(layout, grid, neurons=args.neurons, steps=steps, dt=dt, integrator=args.integrator))
        return 0
    result = run(args.neurons, args.duration * 1e-3, args.repeats, args.integrator)
    seconds = sorted(result["seconds"])
    print(f"C reference, model (b): {args.neurons} cells, {args.duration:g} ms, {result['states']} gate states, "
          f"{result['columns']} table columns on {result['grid_points']} points "
          f"({result['grid_step_mV']:.4f} mV)")  # fmt: skip
    print(f"run time {seconds[len(seconds) // 2]:.3f} s (median of {args.repeats}), {len(result['i'])} spikes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
