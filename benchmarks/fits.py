"""Unbinned profile-likelihood fits at scale, on the Drell–Yan contact-interaction model.

    python benchmarks/fits.py                       # 1e6 events, 10 nuisance parameters, 25x25 profile scan
    python benchmarks/fits.py --events 100000 --scan-points 11

Pythia events at the SM (hard process + fast detector) with their exact morphing ratio (a LinearRatio)
are the Monte Carlo; reweighted to θ_true = (c_LL, c_LR) = (0.02, −0.01) TeV⁻² and scaled to 139 fb⁻¹ they
are the Asimov dataset. 5 normalisation and 5 shape systematics (per-event up/down factors that depend on
the observables). Times the model's construction (tabulating the shape terms), one full fit (MIGRAD + exact
Hessian, 12 free parameters), the same fit with the ratio given as an opaque function (every sum over events
done per call; at --opaque-events) and a profile scan over (c_LL, c_LR) with the 10 nuisance parameters
minimised at every node. Target: one fit < 2 s on 2 cores. Writes benchmarks/results/fits.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _table import report

from hepsbi.inference.nuisance import NormSys, ShapeSys
from hepsbi.inference.profile import minimize, profile_scan
from hepsbi.inference.unbinned import LinearRatio, UnbinnedModel
from hepsbi.physics import DrellYanContact

TRUTH = (0.02, -0.01)
LUMINOSITY_PB = 139e3


def build(sim: DrellYanContact, n: int, opaque: bool = False) -> UnbinnedModel:
    events = sim.events
    keep = slice(0, n)
    x = torch.from_numpy(events.x[keep])
    coef = sim.morphing_coefficients(events.z[keep])
    mc_w = torch.from_numpy(events.weights[keep]) * (events.weights.sum() / events.weights[keep].sum())
    ratio = LinearRatio(sim.morphing_basis, coef, (mc_w @ coef) / mc_w.sum())  # normalised on these events
    truth = torch.tensor(TRUTH, dtype=torch.float64)
    data_w = LUMINOSITY_PB * mc_w * (coef @ sim.morphing_basis(truth))  # Asimov: expected events per event
    sigma_sm = float(mc_w.sum())
    norm = [NormSys(f"norm{k}", 1 + 0.02 * (k + 1), 1 - 0.018 * (k + 1)) for k in range(5)]
    shape = []
    for k in range(5):
        column = x[:, k % x.shape[1]]
        slope = 0.02 * (k + 1) * torch.tanh((column - column.median()) / column.std())
        shape.append(ShapeSys(f"shape{k}", 1 + slope, 1 - 0.9 * slope))
    log_ratio = (lambda th: ratio(th)) if opaque else ratio

    def expected(theta: torch.Tensor) -> torch.Tensor:
        return LUMINOSITY_PB * sigma_sm * (ratio.mean @ sim.morphing_basis(theta))

    return UnbinnedModel(["c_LL", "c_LR"], log_ratio, data_w, expected, norm=norm, shape=shape,
                         mc_log_ratio=log_ratio, mc_weights=mc_w, mc_shape=shape)


def timed_fit(model: UnbinnedModel) -> tuple[float, object]:
    t0 = time.perf_counter()
    fit = minimize(model.nll, model.names, np.zeros(len(model.names)))
    return time.perf_counter() - t0, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events after cuts (about 72%% of those generated)")
    parser.add_argument("--opaque-events", type=int, default=100_000, help="0: skip the opaque-ratio fit")
    parser.add_argument("--scan-points", type=int, default=25, help="0: the fits only")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    sim = DrellYanContact(n_events=int(args.events / 0.7), parameters=["c_LL", "c_LR"], c_max=0.05, seed=1)
    n = min(args.events, len(sim.events))
    print(f"generated {n} events after cuts in {time.perf_counter() - t0:.0f} s")
    columns = ["measurement", "events", "seconds", "calls", "target"]
    rows = []
    t0 = time.perf_counter()
    model = build(sim, n)
    build_s = time.perf_counter() - t0
    rows.append({"measurement": "build the model (tabulate 5 shape terms, Monte Carlo moments)", "events": n,
                 "seconds": round(build_s, 2), "calls": "-", "target": "-"})
    fit_s, fit = timed_fit(model)
    print(f"fit: {fit_s:.2f} s, {fit.n_calls} calls, c = {fit.values['c_LL']:.5f}, {fit.values['c_LR']:.5f} "
          f"± {fit.errors['c_LL']:.5f}, {fit.errors['c_LR']:.5f}")
    rows.append({"measurement": "one profile fit (MIGRAD + exact Hessian, 12 free parameters)", "events": n,
                 "seconds": round(fit_s, 3), "calls": fit.n_calls, "target": "< 2 s"})
    if args.opaque_events:
        opaque = build(sim, min(args.opaque_events, n), opaque=True)
        slow_s, slow = timed_fit(opaque)
        rows.append({"measurement": "the same fit, ratio as an opaque function (sums per call)",
                     "events": min(args.opaque_events, n), "seconds": round(slow_s, 2), "calls": slow.n_calls,
                     "target": "-"})
    if args.scan_points >= 2:
        half = 4 * np.array([fit.errors["c_LL"], fit.errors["c_LR"]])
        axes = {p: np.linspace(fit.values[p] - h, fit.values[p] + h, args.scan_points)
                for p, h in zip(("c_LL", "c_LR"), half)}
        t0 = time.perf_counter()
        scan = profile_scan(model.nll, model.names, [fit.values[k] for k in model.names], axes)
        scan_s = time.perf_counter() - t0
        print(f"scan {args.scan_points}x{args.scan_points}: {scan_s:.1f} s; 68% area {scan.contour_area['68']:.4g}")
        rows.append({"measurement": f"profile scan {args.scan_points}x{args.scan_points} (10 NPs minimised per node)",
                     "events": n, "seconds": round(scan_s, 2), "calls": "-", "target": "-"})
    report("fits", f"unbinned profile fits on Drell-Yan, 10 nuisance parameters, {args.threads} threads", columns, rows)


if __name__ == "__main__":
    main()
