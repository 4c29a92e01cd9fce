"""Closure of SM reweighting against Pythia's ContactInteractions process (README table).

    python benchmarks/closure.py [--events 100000]

Writes benchmarks/results/closure.json.
"""

from __future__ import annotations

import argparse

from _table import report

from hepsbi.physics.closure import closure

CASES = [{"LL": -1}, {"LR": 1}, {"RL": -1}, {"RR": 1}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--lambda-tev", type=float, default=5.0)
    args = parser.parse_args()
    rows = []
    for eta in CASES:
        r = closure(args.lambda_tev, eta, n_events=args.events, seed=11)
        label = ", ".join(f"eta_{k} = {v:+d}" for k, v in eta.items())
        rows.append({
            "case": f"Lambda = {args.lambda_tev} TeV, {label}",
            "sigma_reweighted_pb": f"{r.sigma_reweighted:.4f} ± {r.sigma_reweighted_err:.4f}",
            "sigma_pythia_ci_pb": f"{r.sigma_direct:.4f} ± {r.sigma_direct_err:.4f}",
            "relative_difference": round(r.relative_difference, 5),
            "pull": round(r.pull, 2),
            "p_m_ll": round(r.pvalue_m_ll, 3),
            "p_cos_theta": round(r.pvalue_cos_theta, 3),
        })
    report("closure", "SM reweighted vs Pythia ContactInteractions (parton level, 4 mass slices)",
           list(rows[0]), rows, {"events_per_sample": args.events})


if __name__ == "__main__":
    main()
