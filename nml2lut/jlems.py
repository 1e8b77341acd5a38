"""jlems: a channel's curves from jLEMS, the NeuroML reference simulator, compared with nml2lut's.

Optional: used only when Java and pyNeuroML (which ships the jNeuroML jar)
are installed.  The channel is put in a one-compartment "cell" whose
membrane potential ramps from the low to the high end of the table range,
as pyNeuroML's channel analysis does; jLEMS records ``v`` and every gate's
``inf`` and ``tau`` (SI units), and those are compared with the channel's
curves at the recorded voltages.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tempfile
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

__all__ = ["availability", "lems_document", "compare", "TOLERANCE"]

TOLERANCE = 1e-3
"""jLEMS writes about single precision and steps the ramp: inf absolute, tau relative."""
_DURATION_MS = 1000.0
_STEP_MS = 0.1
_OUTPUT = "nml2lut_jlems.dat"


def _jar() -> Path | None:
    spec = importlib.util.find_spec("pyneuroml")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        jars = sorted(Path(folder, "lib").glob("jNeuroML*jar-with-dependencies.jar"))
        if jars:
            return jars[-1]
    return None


def availability() -> tuple[bool, str]:
    """Whether the jLEMS comparison can run here, and if not, why."""
    if shutil.which("java") is None:
        return False, "jLEMS comparison skipped: no java on PATH"
    if importlib.util.find_spec("pyneuroml") is None:
        return False, "jLEMS comparison skipped: pyNeuroML is not installed (pip install pyneuroml)"
    if _jar() is None:
        return False, "jLEMS comparison skipped: pyNeuroML has no jNeuroML jar"
    return True, "compared with jLEMS (pyNeuroML's jNeuroML)"


def recorded_curves(loaded) -> list[tuple[str, str]]:
    """(gate path, quantity) pairs jLEMS exposes for the channel: ``("m", "inf")``, ``("q/fast", "tau")``..."""
    pairs = []
    for gate in loaded.model.gates:
        if gate.kind == "fractional":
            for sub in gate.subgates:
                pairs += [(f"{gate.id}/{sub.id}", "inf"), (f"{gate.id}/{sub.id}", "tau")]
        elif gate.kind == "dynamic":
            pairs += [(gate.id, "inf"), (gate.id, "tau")]
        elif gate.kind == "instantaneous":
            pairs.append((gate.id, "inf"))
    return pairs


def lems_document(loaded, source: str | Path, v_range: tuple[float, float]) -> str:
    """A LEMS simulation that ramps v over ``v_range`` (V) and records the channel's curves."""
    low, high = (x * 1e3 for x in v_range)
    temperature = 0.0 if loaded.model.temperature is None else loaded.model.temperature - 273.15
    columns = "\n".join(
        f'      <OutputColumn id="c{k}" quantity={quoteattr(f"pop[0]/test/{loaded.id}/{gate}/{quantity}")}/>'
        for k, (gate, quantity) in enumerate(recorded_curves(loaded))
    )
    return f"""<Lems>
  <Target component="sim"/>
  <Include file="Cells.xml"/>
  <Include file="Networks.xml"/>
  <Include file="Simulation.xml"/>
  <Include file={quoteattr(str(Path(source).resolve()))}/>
  <ComponentType name="nml2lutRampCell" extends="baseCellMembPot">
    <Parameter name="vLow" dimension="voltage"/>
    <Parameter name="vHigh" dimension="voltage"/>
    <Parameter name="duration" dimension="time"/>
    <Parameter name="caConc" dimension="concentration"/>
    <Child name="channelPopulation" type="channelPopulation"/>
    <Dynamics>
      <StateVariable name="v" exposure="v" dimension="voltage"/>
      <OnStart><StateAssignment variable="v" value="vLow"/></OnStart>
      <TimeDerivative variable="v" value="(vHigh - vLow)/duration"/>
    </Dynamics>
  </ComponentType>
  <nml2lutRampCell id="ramp" vLow="{low!r}mV" vHigh="{high!r}mV" duration="{_DURATION_MS!r}ms" caConc="0mM">
    <channelPopulation id="test" ionChannel={quoteattr(loaded.id)} number="1" erev="0mV"/>
  </nml2lutRampCell>
  <network id="net" type="networkWithTemperature" temperature="{temperature!r} degC">
    <population id="pop" component="ramp" size="1"/>
  </network>
  <Simulation id="sim" length="{_DURATION_MS!r}ms" step="{_STEP_MS!r}ms" target="net">
    <OutputFile id="out" fileName="{_OUTPUT}">
      <OutputColumn id="v" quantity="pop[0]/v"/>
{columns}
    </OutputFile>
  </Simulation>
</Lems>
"""


def _run(document: str, timeout: float) -> np.ndarray:
    jar = _jar()
    with tempfile.TemporaryDirectory(prefix="nml2lut-jlems-") as folder:
        lems = Path(folder, "LEMS_nml2lut_check.xml")
        lems.write_text(document, encoding="utf-8")
        command = ["java", "-Xmx1G", "-jar", str(jar), lems.name, "-nogui"]
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=timeout, check=False)
        output = Path(folder, _OUTPUT)
        if done.returncode != 0 or not output.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"jLEMS failed (exit {done.returncode}): {' / '.join(tail)}")
        return np.loadtxt(output, ndmin=2)


def compare(loaded, source: str | Path, *, timeout: float = 300.0, runner=_run) -> dict:
    """Compare the channel's curves with jLEMS's; ``{"status": "match" | "mismatch" | "error", ...}``.

    ``runner(document, timeout)`` returns jLEMS's output columns (time, v, curves...);
    tests replace it.
    """
    pairs = recorded_curves(loaded)
    if not pairs:
        return {"status": "match", "curves": [], "note": "no gates with inf/tau to compare"}
    v_range = (loaded.grid.v_min, loaded.grid.v_max) if loaded.grid is not None else (-0.1, 0.06)
    try:
        data = runner(lems_document(loaded, source, v_range), timeout)
    except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as err:
        return {"status": "error", "message": str(err)}
    if data.shape[1] != len(pairs) + 2:
        return {"status": "error", "message": f"jLEMS wrote {data.shape[1]} columns, expected {len(pairs) + 2}"}
    v = data[:, 1]
    inside = (v >= v_range[0]) & (v <= v_range[1])
    ours = loaded.curves(v[inside])
    curves = []
    for k, (gate, quantity) in enumerate(pairs):
        reference, mine = data[inside, k + 2], ours.get(gate, {}).get(quantity)
        if mine is None:
            curves.append({"curve": f"{gate}/{quantity}", "status": "missing"})
            continue
        with np.errstate(all="ignore"):
            scale = np.abs(reference) if quantity == "tau" else 1.0
            error = np.abs(mine - reference) / scale
        error = np.where(np.isfinite(error), error, np.inf)
        worst = int(np.argmax(error))
        curves.append(
            {"curve": f"{gate}/{quantity}", "max_error": float(error[worst]), "at_mV": float(v[inside][worst] * 1e3)}
        )
    bad = [c for c in curves if c.get("max_error", np.inf) > TOLERANCE]
    return {"status": "mismatch" if bad else "match", "tolerance": TOLERANCE, "curves": curves}
