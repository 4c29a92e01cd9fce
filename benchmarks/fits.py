"""Unbinned profile-likelihood fits at scale.

    python benchmarks/fits.py                       # 1e6 events, 10 nuisance parameters, 25x25 profile scan
    python benchmarks/fits.py --events 100000 --scan-points 11

A two-parameter toy (MultiParameterGaussian, exact likelihood ratio, 5 observables) with 5 normalisation and
5 shape systematics (per-event factors); Monte Carlo at θ_ref reweighted to θ_true = (0.2, −0.1) is the
Asimov dataset (1000 expected events) and, with its reference weights, the Monte Carlo of the yield
correction Z(θ, α). Times one full fit (MIGRAD + HESSE, all 12 parameters free) and a profile scan over
(θ1, θ2) with the 10 nuisance parameters minimised at every node. Target: one fit < 2 s on 2 cores.
Writes benchmarks/results/fits.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from hepsbi.inference.nuisance import NormSys, ShapeSys
from hepsbi.inference.profile import minimize, profile_scan
from hepsbi.inference.unbinned import UnbinnedModel
from hepsbi.simulators import MultiParameterGaussian

from _table import report


def build(n: int, seed: int = 0) -> UnbinnedModel:
    sim = MultiParameterGaussian()
    gen = torch.Generator().manual_seed(seed)
    truth = torch.tensor([0.2, -0.1], dtype=torch.float64)
    ref = sim.space.reference
    x, _ = sim.sample(ref.expand(n, -1), gen)  # Monte Carlo at θ_ref …
    log_p_ref = sim.log_prob(x, ref)

    def log_ratio(theta: torch.Tensor) -> torch.Tensor:
        return sim.log_prob(x, theta) - log_p_ref

    mc_weights = torch.full((n,), 1.0 / n, dtype=torch.float64)
    weights = 1000.0 * mc_weights * torch.exp(log_ratio(truth))  # … reweighted to θ_true: 1000 expected events
    rng = np.random.default_rng(seed)
    norm = [NormSys(f"norm{k}", 1 + 0.02 * (k + 1), 1 - 0.02 * (k + 1)) for k in range(5)]
    shape = []
    for k in range(5):
        slope = 0.03 * (k + 1) * np.tanh(x[:, k].numpy())
        up, down = 1 + slope + 0.001 * rng.standard_normal(n), 1 - slope
        shape.append(ShapeSys(f"shape{k}", torch.from_numpy(up), torch.from_numpy(down)))
    return UnbinnedModel(["theta1", "theta2"], log_ratio, weights, lambda th: torch.tensor(1000.0, dtype=torch.float64),
                         norm=norm, shape=shape, mc_log_ratio=log_ratio, mc_weights=mc_weights, mc_shape=shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--scan-points", type=int, default=25, help="0: the fit only")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build(args.events)
    start = np.zeros(len(model.names))
    t0 = time.perf_counter()
    fit = minimize(model.nll, model.names, start)
    fit_s = time.perf_counter() - t0
    print(f"fit: {fit_s:.2f} s, {fit.n_calls} calls, theta = {fit.values['theta1']:.4f}, {fit.values['theta2']:.4f}")
    rows = [{"measurement": "one profile fit (MIGRAD + HESSE, 12 free parameters)", "events": args.events,
             "seconds": round(fit_s, 3), "calls": fit.n_calls, "target": "< 2 s"}]
    if args.scan_points < 2:
        report("fits", f"unbinned profile fits, 10 nuisance parameters, {args.threads} threads",
               ["measurement", "events", "seconds", "calls", "target"], rows)
        return
    axes = {
        "theta1": np.linspace(fit.values["theta1"] - 0.3, fit.values["theta1"] + 0.3, args.scan_points),
        "theta2": np.linspace(fit.values["theta2"] - 0.3, fit.values["theta2"] + 0.3, args.scan_points),
    }
    t0 = time.perf_counter()
    scan = profile_scan(model.nll, model.names, [fit.values[n] for n in model.names], axes)
    scan_s = time.perf_counter() - t0
    print(f"scan {args.scan_points}x{args.scan_points}: {scan_s:.1f} s; 68% area {scan.contour_area['68']:.4g}")
    rows.append({"measurement": f"profile scan {args.scan_points}x{args.scan_points} (10 NPs minimised per node)",
                 "events": args.events, "seconds": round(scan_s, 2), "calls": "-", "target": "-"})
    report("fits", f"unbinned profile fits, 10 nuisance parameters, {args.threads} threads",
           ["measurement", "events", "seconds", "calls", "target"], rows)


if __name__ == "__main__":
    main()
