"""Reading LHE files: events/s and peak memory of hepsbi's chunked reader against pylhe's parser, same files.

    python benchmarks/lhe_reading.py                  # the shared FxFx NLO file ×1 and ×4 (10k and 40k events)
    python benchmarks/lhe_reading.py --copies 1 4 16 --chunk-events 5000

The files are the shared MadGraph5_aMC@NLO FxFx sample (10,000 events, gzipped) and copies of it whose events
are repeated k times (plain text, written to a temporary directory). hepsbi: ``iter_chunks`` (every event's
weights and particles as arrays, chunk by chunk) and ``LHESample(...).generate()`` (the same reading plus the
dilepton reconstruction, the fast detector and the observables: Events ready for training); pylhe:
``LHEFile.fromfile(...).events``, touching every event's weight and particles. Peak memory: tracemalloc's peak of Python and numpy allocations while reading — flat
in the file size means the same peak for ×1 and ×k. Target (issue 14): LHESample ≥ 0.8 × pylhe's events/s. Writes
lhe_reading.json (benchmarks/out/, or benchmarks/results/ with HEPSBI_RECORD=1).
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
import tracemalloc
from pathlib import Path

from _table import report

from hepsbi.physics.lhe import iter_chunks
from hepsbi.physics.lhe_sample import LHESample

FXFX = Path(__file__).resolve().parents[2] / "shared" / "data" / "pylhe-testfile-madgraph-2.2.1-Z-fxfx.lhe.gz"


def repeated(source: Path, copies: int, directory: Path) -> Path:
    """A plain LHE file with the events of ``source`` repeated ``copies`` times."""
    text = gzip.open(source, "rt").read()
    start, end = text.index("<event"), text.rindex("</event>") + len("</event>\n")
    path = directory / f"fxfx_x{copies}.lhe"
    with open(path, "w") as f:
        f.write(text[:start])
        for _ in range(copies):
            f.write(text[start:end])
        f.write("</LesHouchesEvents>\n")
    return path


def measure(read) -> tuple[int, float, float]:  # noqa: ANN001
    """(events, seconds, peak MiB) of ``read``: timed on its own, then once more under tracemalloc (which slows it)."""
    start = time.perf_counter()
    n = read()
    seconds = time.perf_counter() - start
    tracemalloc.start()
    read()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return n, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--chunk-events", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3, help="timings per cell; the fastest is reported")
    args = parser.parse_args()
    import pylhe

    def ours(path: Path) -> int:
        return sum(len(chunk) for chunk in iter_chunks(path, args.chunk_events))

    def sample(path: Path) -> int:
        return int(LHESample(path, chunk_events=args.chunk_events).generate().provenance["events_read"])

    def theirs(path: Path) -> int:
        n = 0
        for event in pylhe.LHEFile.fromfile(str(path)).events:
            _ = event.eventinfo.weight, [p.px for p in event.particles]
            n += 1
        return n

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = [("fxfx.lhe.gz (shared)", FXFX)] + [(f"fxfx ×{k} (plain)", repeated(FXFX, k, Path(tmp)))
                                                   for k in args.copies]
        for label, path in files:
            cells = {}
            for name, read in (("hepsbi", ours), ("sample", sample), ("pylhe", theirs)):
                runs = [measure(lambda: read(path)) for _ in range(args.repeats)]  # noqa: B023
                n, seconds, peak = min(runs, key=lambda r: r[1])
                cells[name] = (n, seconds, max(r[2] for r in runs))
            (n, ts, ps), (k, tl, pl), (m, tp, pp) = cells["hepsbi"], cells["sample"], cells["pylhe"]
            assert n == m == k, (label, n, k, m)
            rows.append({"file": label, "events": n, "hepsbi_events_per_s": round(n / ts),
                         "lhesample_events_per_s": round(n / tl), "pylhe_events_per_s": round(n / tp),
                         "speed_ratio": ts and tp / ts, "lhesample_ratio": tl and tp / tl, "hepsbi_peak_mib": ps,
                         "lhesample_peak_mib": pl, "pylhe_peak_mib": pp, "size_mib": path.stat().st_size / 2**20})
            print(f"{label}: {n} events, hepsbi {n / ts:,.0f}/s peak {ps:.1f} MiB; LHESample {n / tl:,.0f}/s peak "
                  f"{pl:.1f} MiB; pylhe {n / tp:,.0f}/s peak {pp:.1f} MiB", flush=True)
    report("lhe_reading", f"LHE reading, chunks of {args.chunk_events} events (fastest of {args.repeats})",
           ["file", "events", "size_mib", "hepsbi_events_per_s", "lhesample_events_per_s", "pylhe_events_per_s",
            "speed_ratio", "lhesample_ratio", "hepsbi_peak_mib", "lhesample_peak_mib", "pylhe_peak_mib"], rows,
           {"chunk_events": args.chunk_events})


if __name__ == "__main__":
    main()
