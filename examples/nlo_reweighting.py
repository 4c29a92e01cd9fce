"""NLO reweighting with negative weights: learn p_NLO(x) / p_LO(x) between MadGraph5_aMC@NLO's FxFx-merged
Z/γ* → ℓℓ + 0, 1 jet at NLO (the shared sample: 7 TeV, m_ℓℓ > 30 GeV, 18.5 % negative weights; showered and merged
by Pythia 8 here) and Pythia 8's own leading-order Z/γ* → ℓℓ (same energy and mass cut, same shower), reweight LO to
NLO, and check the closure on NLO events no network saw.

    python examples/nlo_reweighting.py --out runs/nlo                 # ~10 minutes on 2 cores
    python examples/nlo_reweighting.py --out runs/nlo --lo-events 100000 --methods revert smm

Methods (hepsbi.TwoSampleRatio): ``revert`` and ``smm`` learn the signed ratio from the signed NLO weights;
``bce |w|`` and ``bce clipped`` are cross-entropy on the absolute or the clipped (max(w, 0)) NLO weights — what a
positive-weight method must do. Closure: in each of p_T,ℓℓ, y_ℓℓ, n_jets and the leading jet's p_T, the held-out LO
events weighted by r̂ against the held-out NLO events, both normalised to unit sum, χ² = Σ_b (a_b − b_b)² /
(σ²_a,b + σ²_b,b) with σ² = Σ w² of the bin, over ndf = bins − 1. Writes ``closure.json``, ``closure.png`` and
the two event samples (``nlo.h5``, ``lo.h5``: reused by a second run) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from hepsbi.data.events import Events
from hepsbi.estimators.two_sample import TwoSampleRatio
from hepsbi.files import atomic_path
from hepsbi.physics.detector import FastDetector
from hepsbi.physics.dileptons import LATENT_NAMES, reconstruct_dileptons
from hepsbi.physics.lhe_sample import LHESample
from hepsbi.physics.pythia import PythiaBatches

FXFX = Path(__file__).resolve().parents[2] / "shared" / "data" / "pylhe-testfile-madgraph-2.2.1-Z-fxfx.lhe.gz"
OBSERVABLES = ["m_ll", "pt_ll", "y_ll", "n_jets", "jet1_pt"]
#: MadGraph's run card of the sample: ickkw = 3 (FxFx), ptj = 10 GeV, at most one jet in the Born
MERGING = {"scheme": "fxfx", "qcut": 20.0, "qcut_me": 10.0, "n_jet_max": 1}
#: the same shower for both samples: no hadronisation (jets of partons: the closure is about the hard process)
SHOWER = ["HadronLevel:all = off"]
LO_PROCESS = ["Beams:eCM = 7000.", "WeakSingleBoson:ffbar2gmZ = on", "23:onMode = off", "23:onIfAny = 11 13",
              "PhaseSpace:mHatMin = 30."]
DETECTOR = FastDetector(lepton_pt_min=15.0)
CLOSURE_BINS = {"pt_ll": [0, 5, 10, 15, 20, 30, 40, 60, 100, 200],
                "y_ll": [-2.5, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5],
                "n_jets": [-0.5, 0.5, 1.5, 2.5, 10],
                "jet1_pt": [0, 30, 40, 60, 100, 200, 1000]}


def cached(file: Path, size: int | None, make: Callable[[], Events]) -> Events:
    """The events in ``file`` when it holds a sample of this ``size`` (its provenance says), else ``make()``'s,
    saved there."""
    if file.is_file():
        events = Events.load(file)
        if events.provenance.get("events_requested") == size:
            return events
    events = make()
    events.provenance["events_requested"] = size
    events.save(file)
    return events


def nlo_events(out: Path, n_events: int | None) -> Events:
    """The FxFx sample (its first ``n_events`` accepted by the merging, all by default) showered and merged by
    Pythia, through the detector (cached in ``out/nlo.h5``)."""
    return cached(out / "nlo.h5", n_events, LHESample(FXFX, OBSERVABLES, detector=DETECTOR, seed=1, n_events=n_events,
                                                      shower=True, merging=MERGING, pythia_settings=SHOWER).generate)


def lo_events(out: Path, n_events: int) -> Events:
    """Pythia's LO Z/γ* → ee, μμ with the same shower and detector, weights σ / N in pb (cached in ``out/lo.h5``)."""

    def make() -> Events:
        pythia = PythiaBatches(LO_PROCESS, settings=SHOWER, seed=2)
        rng = np.random.default_rng(2)
        parts = [reconstruct_dileptons(b.final_state, b.id1, b.id2, b.weights, DETECTOR, (11, 13), OBSERVABLES, rng)
                 for b in pythia.batches(2000, n_events)]
        x, z, w = (np.concatenate(p) for p in zip(*parts))
        weights = w * pythia.sigma_pb / pythia.tried / np.mean(w)  # Pythia's weights are 1: σ / N each
        return Events(x, z, weights, OBSERVABLES, list(LATENT_NAMES),
                      {"generator": "pythia8mc", "settings": pythia.settings, "sigma_pb": pythia.sigma_pb,
                       "weight_unit": "pb"})

    return cached(out / "lo.h5", n_events, make)


def split(events: Events, seed: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Half the events for training, half held out: ((x, w), (x, w))."""
    order = np.random.default_rng(seed).permutation(len(events))
    half = len(events) // 2
    train, test = order[:half], order[half:]
    return (events.x[train], events.weights[train]), (events.x[test], events.weights[test])


def histogram(values: np.ndarray, weights: np.ndarray, edges: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Unit-normalised weighted histogram and its variance per bin (Σ w², normalised alike)."""
    total = weights.sum()
    counts = np.histogram(values, edges, weights=weights)[0] / total
    variance = np.histogram(values, edges, weights=weights**2)[0] / total**2
    return counts, variance


def chi2(x: np.ndarray, w: np.ndarray, target: tuple[np.ndarray, np.ndarray], column: int,
         edges: list[float]) -> tuple[float, int]:
    """χ² and ndf of the normalised histograms of (x, w) against the held-out NLO events ``target``."""
    a, va = histogram(x[:, column], w, edges)
    b, vb = histogram(target[0][:, column], target[1], edges)
    return float(((a - b) ** 2 / (va + vb)).sum()), len(edges) - 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/nlo_reweighting"))
    parser.add_argument("--lo-events", type=int, default=40_000, help="LO events generated")
    parser.add_argument("--nlo-events", type=int, default=None, help="NLO events kept by the merging (default: all)")
    parser.add_argument("--methods", nargs="+", default=["revert", "smm", "bce |w|", "bce clipped"])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    start = time.perf_counter()
    nlo, lo = nlo_events(args.out, args.nlo_events), lo_events(args.out, args.lo_events)
    print(f"NLO: {len(nlo)} events after merging and detector ({(nlo.weights < 0).mean():.1%} negative), "
          f"LO: {len(lo)} events ({time.perf_counter() - start:.0f} s)", flush=True)
    (x0, w0), lo_test = split(lo, args.seed)
    (x1, w1), nlo_test = split(nlo, args.seed + 1)
    columns = {name: OBSERVABLES.index(name) for name in CLOSURE_BINS}
    rows: dict[str, dict[str, float]] = {"LO (no reweighting)": {
        name: chi2(lo_test[0], lo_test[1], nlo_test, k, CLOSURE_BINS[name])[0] for name, k in columns.items()}}
    reweighted = {"LO (no reweighting)": lo_test[1]}
    for method in args.methods:
        kind, _, variant = method.partition(" ")
        target = np.abs(w1) if variant == "|w|" else np.clip(w1, 0, None) if variant == "clipped" else w1
        began = time.perf_counter()
        est = TwoSampleRatio(kind, epochs=args.epochs, batch_size=256, progress=False, seed=args.seed)
        est.fit(x0, w0, x1, target)
        r = est.ratio(torch.from_numpy(lo_test[0])).numpy()
        weights = lo_test[1] * r
        reweighted[method] = weights
        rows[method] = {name: chi2(lo_test[0], weights, nlo_test, k, CLOSURE_BINS[name])[0] for name, k in columns.items()}
        rows[method]["negative_share"] = float((r < 0).mean())
        print(f"{method:12s} trained in {time.perf_counter() - began:.0f} s", flush=True)
    ndf = {name: len(CLOSURE_BINS[name]) - 2 for name in columns}
    header = f"{'χ²/ndf':22s}" + "".join(f"{name:>10s}" for name in columns)
    print(header)
    for method, row in rows.items():
        print(f"{method:22s}" + "".join(f"{row[name] / ndf[name]:10.2f}" for name in columns))
    document = {"nlo_events": len(nlo), "nlo_negative_share": float((nlo.weights < 0).mean()), "lo_events": len(lo),
                "ndf": ndf, "chi2": rows, "seconds": time.perf_counter() - start}
    with atomic_path(args.out / "closure.json") as tmp:
        tmp.write_text(json.dumps(document, indent=2))
    plot(args.out / "closure.png", lo_test[0], reweighted, nlo_test, columns)


def plot(path: Path, x: np.ndarray, reweighted: dict[str, np.ndarray], nlo_test: tuple[np.ndarray, np.ndarray],
         columns: dict[str, int]) -> None:
    """Per observable: the held-out NLO events, LO and LO reweighted by each method (normalised), and their ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(columns), figsize=(4.2 * len(columns), 6), sharex="col",
                             gridspec_kw={"height_ratios": [3, 1]})
    for j, (name, k) in enumerate(columns.items()):
        edges = np.asarray(CLOSURE_BINS[name], dtype=float)
        b, vb = histogram(nlo_test[0][:, k], nlo_test[1], list(edges))
        centres = 0.5 * (edges[1:] + edges[:-1])
        axes[0, j].errorbar(centres, b, np.sqrt(vb), fmt="ko", ms=3, label="NLO (held out)")
        axes[1, j].errorbar(centres, np.ones_like(b), np.sqrt(vb) / np.abs(b), fmt="ko", ms=3)
        for label, w in reweighted.items():
            a, _ = histogram(x[:, k], w, list(edges))
            axes[0, j].stairs(a, edges, label=label)
            axes[1, j].stairs(a / b, edges)
        axes[0, j].set_yscale("log")
        axes[1, j].set_xlabel(name)
        axes[1, j].set_ylim(0.5, 1.5)
    axes[0, 0].legend(fontsize=7)
    axes[1, 0].set_ylabel("/ NLO")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


if __name__ == "__main__":
    main()
