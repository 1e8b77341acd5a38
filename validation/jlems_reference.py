"""Run a LEMS file with jLEMS (through pyNeuroML's ``jnml``) and store its traces and spikes as .npz.

Used to make the stored references of nml2lut's own example simulations
(``tests/data/*.npz``), which the test suite compares `nml2lut.run_lems` with.
Needs pyNeuroML (``pip install pyneuroml``) and Java; nml2lut itself does not.

    python validation/jlems_reference.py example_channels/cells/LEMS_ca_cell.xml tests/data/jlems_ca_cell.npz \\
        --root example_channels --jnml /path/to/jnml --stride 10

The .npz holds ``t`` (s), one array per OutputColumn keyed by its quantity
(SI, every ``stride``-th step), ``spikes:<quantity>`` (upward crossings of 0 mV
at full resolution, linearly interpolated) for membrane potentials, and
``command`` (how it was made).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nml2lut.refcompare import threshold_crossings  # noqa: E402


def _output_files(lems: Path) -> list[tuple[str, list[str]]]:
    root = etree.parse(str(lems), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
    files = []
    for output in root.iter("{*}OutputFile", "OutputFile"):
        columns = [c.get("quantity") for c in output if isinstance(c.tag, str) and c.tag.endswith("OutputColumn")]
        files.append((output.get("fileName"), columns))
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lems", type=Path, help="LEMS file")
    parser.add_argument("--root", type=Path, help="folder copied (recursively) to a scratch folder for the run, so "
                        "that includes such as ../x.nml resolve (default: the LEMS file's folder)")
    parser.add_argument("output", type=Path, help=".npz to write")
    parser.add_argument("--jnml", default=shutil.which("jnml") or "jnml", help="the jnml command (pyNeuroML)")
    parser.add_argument("--stride", type=int, default=10, help="keep every n-th sample of the traces")
    args = parser.parse_args(argv)
    root = (args.root or args.lems.parent).resolve()
    relative = args.lems.resolve().parent.relative_to(root)
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copytree(root, Path(scratch) / "root")
        workdir = Path(scratch) / "root" / relative
        subprocess.run([args.jnml, args.lems.name, "-nogui"], cwd=workdir, check=True)
        arrays: dict[str, np.ndarray] = {}
        for file_name, columns in _output_files(args.lems):
            data = np.loadtxt(workdir / file_name, ndmin=2)
            t = data[:, 0]
            for k, quantity in enumerate(columns, start=1):
                if quantity.endswith("/v"):
                    arrays[f"spikes:{quantity}"] = threshold_crossings(t, data[:, k], 0.0)
                arrays[quantity] = data[:: args.stride, k]
            arrays["t"] = t[:: args.stride]
    arrays["command"] = np.array(" ".join(["python validation/jlems_reference.py", *map(str, sys.argv[1:])]))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, **arrays)
    print(f"wrote {args.output}: {', '.join(sorted(arrays))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
