"""Compare loaded channels with the jLEMS reference curves of ../shared/oracle.

Used by tests/test_oracle.py; also runnable as a script that prints the table
of worst errors per channel: ``python -m tests.oracle [lut|exact]``.
"""

from __future__ import annotations

import csv
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import nml2lut
from nml2lut.errors import ModelError, Nml2LutError, UnsupportedError

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CORPUS = SHARED / "corpus"
ORACLE = SHARED / "oracle"

INF_TOLERANCE = {"lut": 1e-3, "exact": 1e-5}  # absolute
TAU_TOLERANCE = {"lut": 1e-3, "exact": 1e-5}  # relative


@dataclass
class OracleResult:
    file: str
    channel: str
    temperature_degC: float
    status: str  # "match", "mismatch", "unsupported", "error"
    worst_inf: float = 0.0
    worst_tau: float = 0.0
    worst_curve: str = ""
    detail: str = ""


def oracle_rows() -> list[dict[str, str]]:
    """The rows of the oracle index with curves (status ok)."""
    with open(ORACLE / "index.tsv", newline="") as handle:
        return [row for row in csv.DictReader(handle, delimiter="\t") if row["status"] == "ok"]


def _oracle_curves(data) -> dict[tuple[str, str], np.ndarray]:
    curves = {}
    for key in data.files:
        curve, _, quantity = key.rpartition(".")
        if quantity in ("inf", "tau", "rf", "rr") and curve:
            curves[(curve, quantity)] = data[key]
    return curves


def load_corpus_channel(path, channel_id, **kwargs):
    """`nml2lut.load_channel`, with no voltage shift for rates that require one.

    jLEMS's clamp cell holds each channel in a plain channelDensity, so rates
    that require ``vShift`` see 0.
    """
    try:
        return nml2lut.load_channel(path, channel_id, **kwargs)
    except ModelError as err:
        if "vShift" not in str(err):
            raise
        return nml2lut.load_channel(path, channel_id, vshift="0mV", **kwargs)


def _needs_conc(channel) -> bool:
    return channel.model.needs("caConc")


def compare(row: dict[str, str], mode: str) -> OracleResult:
    """Load the channel of one oracle row and compare its curves."""
    data = np.load(ORACLE / row["npz"])
    result = OracleResult(row["file"], row["channel"], float(row["temperature_degC"]), "match")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            channel = load_corpus_channel(
                CORPUS / row["file"], row["channel"], temperature=f"{float(data['temperature_K'])}K", mode=mode
            )
    except UnsupportedError as err:
        result.status, result.detail = "unsupported", err.feature
        return result
    except Nml2LutError as err:
        result.status, result.detail = "error", f"{type(err).__name__}: {err}"
        return result
    v = data["v"]
    ours = channel.curves(v, conc=float(data["caConc_SI"]) if _needs_conc(channel) else None)
    for (curve, quantity), reference in _oracle_curves(data).items():
        mine = ours.get(curve, {}).get(quantity)
        if mine is None and quantity == "tau" and not np.any(reference):
            continue  # an instantaneous gate: jLEMS records tau = 0, nml2lut has no tau
        if mine is None:
            result.status, result.detail = "mismatch", f"no curve {curve}.{quantity}"
            return result
        if quantity == "inf":
            error = float(np.max(np.abs(mine - reference)))
            result.worst_inf = max(result.worst_inf, error)
        else:  # tau, and the transition rates of kinetic schemes (1/s; below 1/s compared absolutely)
            floor = 1.0 if quantity in ("rf", "rr") else 0.0
            error = float(np.max(np.abs(mine - reference) / np.maximum(np.abs(reference), floor)))
            result.worst_tau = max(result.worst_tau, error)
        if error >= max(result.worst_inf, result.worst_tau):
            result.worst_curve = f"{curve}.{quantity}"
    if not np.isfinite(result.worst_inf + result.worst_tau) or result.worst_inf > INF_TOLERANCE[mode] or (
        result.worst_tau > TAU_TOLERANCE[mode]
    ):
        result.status = "mismatch"
    return result


def main(mode: str = "lut") -> int:
    results = [compare(row, mode) for row in oracle_rows()]
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
        if r.status != "match":
            print(f"{r.status:11s} {r.file} {r.channel} {r.temperature_degC}: inf {r.worst_inf:.2e} "
                  f"tau {r.worst_tau:.2e} {r.worst_curve} {r.detail[:200]}")  # fmt: skip
    print(mode, counts, f"{counts.get('match', 0) / len(results):.1%} match")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
