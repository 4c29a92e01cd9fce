"""Simulation throughput and memory of the Drell–Yan forward model.

    python benchmarks/simulation.py                 # all three measurements
    python benchmarks/simulation.py --hard-events 200000 --shower-events 500

(a) hard process + detector + gold mining (morphing coefficients): events/s/core (target >= 20k).
(b) full shower + MPI + hadronisation + detector + jets vs bare Pythia (p.next() only), same settings,
    side by side in this run, both timed from construction (init included) to the last event
    (target: within 10 %).
(c) peak resident memory vs number of events generated through the chunked EventStore path
    (each size in a fresh process; must stay flat).
Writes benchmarks/results/simulation.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from _table import report  # noqa: E402

MEMORY_PROBE = """
import resource, sys, tempfile, torch
torch.set_num_threads(1)
from hepsbi.physics import DrellYanContact
n = int(sys.argv[1])
with tempfile.TemporaryDirectory() as d:
    DrellYanContact(n_slices=4).generate_to_store(d, n, chunk_events=20_000)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def bare_pythia_rate(n: int, settings: list[str]) -> float:
    """Pythia alone, ``next()`` in a loop, timed like hepsbi's generate(): construction and init included."""
    import pythia8mc

    start = time.perf_counter()
    pythia = pythia8mc.Pythia("", False)
    for s in settings:
        pythia.readString(s)
    pythia.init()
    for _ in range(n):
        pythia.next()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hard-events", type=int, default=200_000)
    parser.add_argument("--shower-events", type=int, default=1500)
    parser.add_argument("--memory-sizes", type=int, nargs="+", default=[20_000, 100_000, 300_000])
    args = parser.parse_args()
    torch.set_num_threads(1)
    from hepsbi.physics import DrellYanContact, MassSlice

    rows = []
    sim = DrellYanContact(n_slices=4)
    start = time.perf_counter()
    events = sim.generate(args.hard_events, seed=5)
    rate = args.hard_events / (time.perf_counter() - start)
    rows.append({"measurement": "hard process + detector + gold mining", "events": args.hard_events,
                 "value": round(rate), "unit": "events/s/core", "target": ">= 20000"})
    print(f"hard: {rate:,.0f} events/s ({len(events)} pass)", flush=True)

    shower = DrellYanContact(n_slices=1, shower=True, observables=("m_ll", "cos_theta_cs", "n_jets", "jet1_pt", "met"))
    settings = shower.run.settings_for(MassSlice(200.0, 13000.0, args.shower_events), seed=9)
    bare = bare_pythia_rate(args.shower_events, settings)
    start = time.perf_counter()
    shower.generate(args.shower_events, seed=9)
    full = args.shower_events / (time.perf_counter() - start)
    rows.append({"measurement": "bare Pythia, shower + MPI + hadronisation", "events": args.shower_events,
                 "value": round(bare, 1), "unit": "events/s/core", "target": "-"})
    rows.append({"measurement": "hepsbi full: shower + detector + jets + gold", "events": args.shower_events,
                 "value": round(full, 1), "unit": "events/s/core", "target": "within 10% of bare"})
    rows.append({"measurement": "hepsbi full / bare Pythia", "events": args.shower_events,
                 "value": round(full / bare, 3), "unit": "ratio", "target": ">= 0.90"})
    print(f"shower: bare {bare:.1f}/s, hepsbi {full:.1f}/s, ratio {full / bare:.3f}", flush=True)

    for n in args.memory_sizes:
        out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(n)], capture_output=True, text=True, check=True)
        peak = float(out.stdout.strip().splitlines()[-1])
        rows.append({"measurement": "peak RSS, chunked generation (20k/chunk)", "events": n, "value": round(peak, 1),
                     "unit": "MiB", "target": "flat in events"})
        print(f"memory: {n} events -> {peak:.0f} MiB", flush=True)

    report("simulation", "Drell-Yan simulation throughput and memory (1 core)",
           ["measurement", "events", "value", "unit", "target"], rows)


if __name__ == "__main__":
    main()
