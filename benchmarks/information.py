"""How much of the information the Drell–Yan observables carry does each likelihood extract — measured on events
the estimators never saw — and how does it grow with the training size?

    python benchmarks/information.py                  # the demo's settings; sweeps 2k … 300k training events
    python benchmarks/information.py --events 30000 --train 20000 --sizes 2000 20000 --bootstrap 10

Two pools of SM events (hard process + fast detector, the demo's observables and mass slices): one (seed 1, as
large as the largest training size) trains ALICES, the morphing-aware estimator and SALLY at several training
sizes (the convergence curves); the other (seed 777, 100k events) is the held-out Asimov dataset at 139 fb⁻¹ on
which every Fisher information at the SM is evaluated: the parton-level truth (the ceiling), SALLY's score (the
estimate of what the observables carry: it should converge from below as its training grows), a fine 3-D
histogram (a floor), the demo's m_ℓℓ histogram and the learned likelihoods. For every learned statistic the
table gives its *kept* information C_ts C_ss⁻¹ C_st (a lower bound, see
hepsbi.inference.fisher.kept_information) and, last column, Σ ν ŝ ŝᵀ as if it were the true score ("claimed"),
which a noisy estimate inflates. Errors are the spread over Poisson bootstrap replicas of the held-out events.
Last, Asimov datasets of the held-out events at three θ ≠ θ_ref: the MLE of every likelihood trained at the
demo's size (a correct one recovers the truth; coverage toys at θ_ref cannot see a likelihood whose
θ-dependence is too weak). Writes benchmarks/results/information.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _table import report

from hepsbi import TrainingData
from hepsbi.estimators import MorphingRatioEstimator, RatioEstimator, ScoreEstimator
from hepsbi.inference import WeightedAnalysis
from hepsbi.inference.fisher import information_from_scores, kept_information, rate_score
from hepsbi.physics import DrellYanContact

OBSERVABLES = ["m_ll", "cos_theta_cs", "y_ll", "pt_ll"]
MLL_EDGES = [200, 250, 300, 400, 500, 700, 1000, 1500, 2000, 3000, 13000]


def simulator(events: int, seed: int) -> DrellYanContact:
    return DrellYanContact(lepton="mu", m_min=200.0, n_events=events, n_slices=4, parameters=["c_LL", "c_LR"],
                           c_max=0.05, observables=OBSERVABLES, seed=seed)


def quantile_edges(values: np.ndarray, weights: np.ndarray, bins: int) -> list[float]:
    order = np.argsort(values)
    cdf = np.cumsum(np.abs(weights[order])) / np.abs(weights).sum()
    inner = np.interp(np.arange(1, bins) / bins, cdf, values[order])
    return [float(values.min()) - 1e-9, *np.unique(inner).tolist(), float(values.max()) + 1e-9]


def summary(info: np.ndarray) -> tuple[float, float, float]:
    cov = np.linalg.inv(info)
    return float(np.sqrt(cov[0, 0])), float(np.sqrt(cov[1, 1])), float(np.linalg.det(info))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="held-out events")
    parser.add_argument("--train", type=int, default=60_000, help="the demo's training size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2_000, 20_000, 100_000, 300_000],
                        help="training sizes of the learned likelihoods' sweep")
    parser.add_argument("--sally-sizes", type=int, nargs="+", default=[7_500, 30_000, 100_000, 300_000])
    parser.add_argument("--bootstrap", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    pool = max(args.train, *args.sizes, *args.sally_sizes)
    train_sim, test_sim = simulator(pool, 1), simulator(args.events, 777)
    train_sim.generate()
    test_sim.generate()
    raw = TrainingData.from_simulator(train_sim, min(args.train, len(train_sim.events)), seed=0)
    data = raw.balanced("m_ll")
    learned = {  # as the demo trains them (unbalanced), and balanced in m_ll as the demo once did
        "alices": RatioEstimator("alices", progress=False).fit(raw),
        "morphing": MorphingRatioEstimator(progress=False).fit(raw),
        "alices (balanced)": RatioEstimator("alices", progress=False).fit(data),
        "morphing (balanced)": MorphingRatioEstimator(progress=False).fit(data),
    }
    sweep = {}
    for size in args.sizes:
        if size == args.train:
            continue
        rows_at = TrainingData.from_simulator(train_sim, min(size, len(train_sim.events)), seed=0)
        sweep[f"ALICES ({size // 1000}k)"] = RatioEstimator("alices", progress=False).fit(rows_at)
        sweep[f"morphing-aware ({size // 1000}k)"] = MorphingRatioEstimator(progress=False).fit(rows_at)
    sallies = {}
    for size in args.sally_sizes:
        local = TrainingData.local(train_sim, min(size, len(train_sim.events)), seed=7)
        sallies[size] = ScoreEstimator(progress=False).fit(local)
    balanced_sally = ScoreEstimator(progress=False).fit(
        TrainingData.local(train_sim, min(args.sally_sizes[-1], len(train_sim.events)), seed=7).balanced("m_ll"))

    analysis = WeightedAnalysis(test_sim, [0.0, 0.0], 139.0, seed=1)  # every held-out event
    x = test_sim.events.x
    fine = [quantile_edges(x[:, j], test_sim.events.weights, bins) for j, bins in ((0, 20), (1, 10), (2, 6))]
    d = analysis.dataset.weights.to(torch.float64)
    rate = rate_score(analysis.expected_events, analysis.theta_true)
    learned_scores = analysis.scores({label: est.log_ratio_of_theta for label, est in {**learned, **sweep}.items()},
                                     parton_level=True)
    per_event: dict[str, torch.Tensor] = {
        "truth (parton level)": learned_scores.pop("truth"),
        **{f"SALLY score ({size // 1000}k)": torch.as_tensor(est.score(analysis.dataset.x), dtype=torch.float64)
           for size, est in sallies.items()},
        f"SALLY score ({args.sally_sizes[-1] // 1000}k, balanced)":
            torch.as_tensor(balanced_sally.score(analysis.dataset.x), dtype=torch.float64),
        **learned_scores,
    }
    binned = analysis.fisher_information({}, histogram=(["m_ll", "cos_theta_cs", "y_ll"], fine))["histogram"]
    mll = analysis.fisher_information({}, histogram=(["m_ll"], [MLL_EDGES]))["histogram"]

    gen = torch.Generator().manual_seed(0)
    replicas = [torch.poisson(torch.ones(len(d), dtype=torch.float64), generator=gen) for _ in range(args.bootstrap)]
    truth_scores = per_event["truth (parton level)"]
    rows = []
    for label, scores in per_event.items():
        central = summary(information_from_scores(scores, d, rate))
        projected = summary(kept_information(scores, truth_scores, d, rate))
        spread = np.std([summary(kept_information(scores, truth_scores, d * b, rate)) for b in replicas], axis=0)
        rows.append({"likelihood": label, "sigma_c_LL": projected[0], "err_c_LL": float(spread[0]),
                     "sigma_c_LR": projected[1], "err_c_LR": float(spread[1]), "det_I": projected[2],
                     "err_det": float(spread[2]), "det_I_as_likelihood": central[2],
                     "sigma_c_LL_as_likelihood": central[0], "sigma_c_LR_as_likelihood": central[1]})
    for label, info in (("3-D histogram 20x10x6 (floor)", binned), ("m_ll histogram (demo)", mll)):
        s = summary(info)
        rows.append({"likelihood": label, "sigma_c_LL": s[0], "err_c_LL": float("nan"), "sigma_c_LR": s[1],
                     "err_c_LR": float("nan"), "det_I": s[2], "err_det": float("nan"), "det_I_as_likelihood": s[2],
                     "sigma_c_LL_as_likelihood": s[0], "sigma_c_LR_as_likelihood": s[1]})
    bound = next(r for r in rows if r["likelihood"].startswith(f"SALLY score ({max(sallies) // 1000}k)"))
    for r in rows:
        r["det_over_bound"] = r["det_I"] / bound["det_I"]
    # Asimov datasets away from θ_ref: a correct likelihood's MLE is the truth
    closure = WeightedAnalysis(test_sim, [0.0, 0.0], 139.0, n_mc=30_000, seed=1).closure(
        {k: e.log_ratio_of_theta for k, e in learned.items()}, [[0.006, 0.0], [0.0, 0.006], [-0.006, 0.004]])
    for row in closure:
        print(f"Asimov at {row['theta_true']}: {row['likelihood']:20s} MLE {[round(v, 5) for v in row['mle']]}  "
              f"68 % half-widths {[round(v, 5) for v in row['half_width_68']]}")
    report("information", f"Fisher information at the SM on {len(d)} held-out events, 139 fb^-1: projected "
           f"(a lower bound for any statistic; errors from {args.bootstrap} bootstrap replicas) and as likelihood",
           ["likelihood", "sigma_c_LL", "err_c_LL", "sigma_c_LR", "err_c_LR", "det_I", "det_over_bound",
            "det_I_as_likelihood"], rows,
           {"events": args.events, "training_rows": len(data), "sizes": args.sizes, "sally_sizes": args.sally_sizes,
            "seconds": round(time.perf_counter() - start, 1), "asimov_closure": closure})


if __name__ == "__main__":
    main()
