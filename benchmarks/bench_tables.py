"""bench_tables: time building the tables of every channel of ../shared/corpus.

Every channel defined in a corpus file (not in a file it includes) is loaded
with ``nml2lut.load_channel`` at 34 degC in ``lut`` mode (parse, bind, build
and measure the tables, make the Brian2 code), as ``tests/oracle.py`` does:
a channel whose rates require a voltage shift gets ``vshift="0mV"``.  The
channels are spread over ``--workers`` processes (concurrent.futures); the
wall time from the first submission to the last result is the figure
(including the workers' start-up and imports), and the per-channel times
give the slowest channels.  Skipped with a message when the corpus is absent.

    python benchmarks/bench_tables.py [--workers 2] [--no-write]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import report  # noqa: E402

CORPUS = HERE.parent.parent / "shared" / "corpus"


def corpus_files(corpus: Path) -> list[Path]:
    """The corpus's NeuroML files, as tests/test_corpus.py lists them."""
    return sorted(p for p in corpus.rglob("*") if p.suffix in (".nml", ".xml") and "coretypes" not in p.parts)


def list_channels(corpus: Path) -> list[tuple[str, str]]:
    """(file, channel id) of every channel a corpus file defines itself."""
    from nml2lut.errors import Nml2LutError
    from nml2lut.parse import read_library

    pairs = []
    for path in corpus_files(corpus):
        try:
            library = read_library(path)
        except Nml2LutError:
            continue
        pairs += [(str(path), s.id) for s in library.sources if s.path == str(path.resolve())]
    return pairs


def load_corpus_channel(path, channel_id, **kwargs):
    """`nml2lut.load_channel`, with no voltage shift for rates that require one (tests/oracle.py)."""
    import nml2lut
    from nml2lut.errors import ModelError

    try:
        return nml2lut.load_channel(path, channel_id, **kwargs)
    except ModelError as err:
        if "vShift" not in str(err):
            raise
        return nml2lut.load_channel(path, channel_id, vshift="0mV", **kwargs)


def build_one(path: str, channel_id: str) -> dict:
    """Load one channel; its time, outcome and grid size."""
    from nml2lut.errors import Nml2LutError

    start = time.perf_counter()
    outcome, points = "tables", None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            channel = load_corpus_channel(path, channel_id, temperature="34degC")
        if channel.tables is None:
            outcome = "no tables"
        else:
            points = channel.tables.grid.n
    except Nml2LutError as err:
        outcome = f"refused: {type(err).__name__}"
    return {"file": path, "channel": channel_id, "seconds": time.perf_counter() - start, "outcome": outcome,
            "points": points}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    section = {"command": report.command(argv), "machine": report.machine(), "load_before": report.load_average()}
    if not args.corpus.is_dir():
        section["skipped"] = f"corpus not found at {args.corpus}: nothing timed"
        print(section["skipped"])
        section["load_after"] = report.load_average()
        if not args.no_write:
            report.update("tables", section)
        return 0
    start = time.perf_counter()
    pairs = list_channels(args.corpus)
    listed = time.perf_counter() - start
    start = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(build_one, *zip(*pairs, strict=True), chunksize=1))
    wall = time.perf_counter() - start
    root = args.corpus
    for r in results:
        r["file"] = str(Path(r["file"]).relative_to(root))
    refused = [r for r in results if r["outcome"].startswith("refused")]
    by: dict[str, int] = {}
    for r in refused:
        by[r["outcome"].split(": ", 1)[1]] = by.get(r["outcome"].split(": ", 1)[1], 0) + 1
    slowest = sorted(results, key=lambda r: -r["seconds"])[:5]
    section.update(
        channels=len(results), built=sum(r["outcome"] == "tables" for r in results),
        no_tables=sum(r["outcome"] == "no tables" for r in results), refused=len(refused),
        refused_by=", ".join(f"{k} {v}" for k, v in sorted(by.items())) or "none", wall_seconds=wall,
        list_seconds=listed, cpu_seconds=sum(r["seconds"] for r in results), workers=args.workers,
        slowest=[{k: (round(v, 3) if k == "seconds" else v) for k, v in r.items()} for r in slowest],
        load_after=report.load_average(),
    )  # fmt: skip
    print(f"{section['channels']} channels from {args.corpus}: {section['built']} with tables, "
          f"{section['no_tables']} without gates, {section['refused']} refused ({section['refused_by']})")  # fmt: skip
    print(f"wall time {wall:.1f} s with {args.workers} workers (per-channel sum {section['cpu_seconds']:.1f} s); "
          f"listing the channels took {listed:.1f} s more; load average {section['load_before']} -> "
          f"{section['load_after']}")  # fmt: skip
    print("slowest:")
    for r in slowest:
        print(f"  {r['seconds']:7.2f} s  {r['file']} {r['channel']} ({r['outcome']}, {r['points']} points)")
    if not args.no_write:
        report.update("tables", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
