r"""The ``posterior`` stage of a run (``training.posterior``): neural posterior estimation at one observation.

Wiring only: prior draws θ_i and their simulations x_i train a :class:`~hepsbi.estimators.posterior.PosteriorEstimator`;
it is sampled at the observation (the spec's, or one simulation at ``inference.theta_true``), checked by
:func:`hepsbi.diagnostics.sbc` and :func:`~hepsbi.diagnostics.tarp` on fresh simulations and by
:func:`~hepsbi.diagnostics.posterior_predictive`, and — for a simulator with an exact likelihood — compared with the
exact posterior drawn by :class:`~hepsbi.inference.sampling.LikelihoodPosterior`. The stage holds ``model/``,
``posterior.json``, ``posterior.h5`` and ``plots/posterior*.png`` (docs/formats.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from hepsbi.workflow.spec import RunSpec

__all__ = ["SEED_OFFSETS", "posterior_work", "summarise_draws"]

#: seed offsets from ``training.posterior.seed``: training simulations, the observation, calibration, predictive
SEED_OFFSETS = {"train": 0, "observation": 1, "calibration": 2, "predictive": 3, "draws": 4}


def summarise_draws(samples: np.ndarray, names: list[str]) -> dict[str, dict[str, Any]]:
    """Per parameter: mean, sd, median and the central 68 % and 95 % credible intervals of draws (n, p)."""
    out = {}
    for k, name in enumerate(names):
        s = samples[:, k]
        q = np.quantile(s, [0.025, 0.16, 0.5, 0.84, 0.975])
        out[name] = {"mean": float(s.mean()), "sd": float(s.std(ddof=1)), "median": float(q[2]),
                     "interval_68": [float(q[1]), float(q[3])], "interval_95": [float(q[0]), float(q[4])]}
    return out


def posterior_work(spec: RunSpec, tmp: Path, progress: bool) -> dict[str, Any]:
    """Train, sample, check and plot (module docstring) into the stage directory ``tmp``; returns posterior.json."""
    import h5py

    from hepsbi.diagnostics import posterior_predictive, posterior_samples, sbc, tarp
    from hepsbi.estimators.posterior import PosteriorEstimator
    from hepsbi.files import atomic_path, write_json
    from hepsbi.inference.sampling import LikelihoodPosterior
    from hepsbi.report.plots import plot_posterior, plot_sbc_ranks, plot_tarp, plot_training
    from hepsbi.simulators.protocol import has_exact_likelihood
    from hepsbi.workflow.inputs import prepare

    cfg = spec.training.posterior
    assert cfg is not None
    sim, theta_true = prepare(spec)
    names = list(sim.space.names)

    def generator(what: str) -> torch.Generator:
        return torch.Generator().manual_seed(cfg.seed + SEED_OFFSETS[what])

    def simulations(n: int, what: str) -> tuple[torch.Tensor, torch.Tensor]:
        """n prior draws θ (n, p) and their simulations x (n, d_x), from the random stream ``what``."""
        gen = generator(what)
        theta = sim.space.sample_prior(n, gen)
        return theta, sim.sample(theta, gen)[0]

    theta, x = simulations(cfg.n_samples, "train")
    options: dict[str, Any] = {"seed": cfg.seed, "progress": progress, "device": spec.execution.device}
    if cfg.epochs:
        options["epochs"] = cfg.epochs
    estimator = PosteriorEstimator(sim.space, flow=cfg.flow, transforms=cfg.transforms, hidden=cfg.hidden,
                                   members=cfg.ensemble, adjust=cfg.adjust, activation=cfg.activation,
                                   **options)
    estimator.fit(theta, x)
    estimator.save(tmp / "model")

    if cfg.observation is not None:
        x_obs = torch.tensor([cfg.observation], dtype=torch.float64)
    else:
        x_obs, _ = sim.sample(theta_true[None], torch.Generator().manual_seed(spec.inference.seed))
    draws = estimator.sample(x_obs, cfg.draws, generator=generator("draws")).numpy()
    result: dict[str, Any] = {
        "parameters": names, "observation": x_obs[0].tolist(),
        "theta_true": sim.space.as_dict(theta_true) if cfg.observation is None else None,
        "simulations": cfg.n_samples, "flow": cfg.flow, "ensemble": cfg.ensemble, "adjust": cfg.adjust,
        "activation": cfg.activation,
        "draws": cfg.draws,
        "training": {"epochs": len(estimator.history.train_loss), "best_epoch": estimator.history.best_epoch},
        "npe": summarise_draws(draws, names),
    }
    sets = {"NPE": draws}
    if has_exact_likelihood(sim):
        exact = LikelihoodPosterior(sim.log_prob, sim.space).sample(x_obs, cfg.draws, generator=generator("draws"))  # type: ignore[attr-defined]
        sets["exact"] = exact.numpy()
        result["exact"] = summarise_draws(sets["exact"], names)
    ranks = None
    if cfg.calibration:
        theta_c, x_c = simulations(cfg.calibration, "calibration")
        samples = posterior_samples(estimator, x_c, cfg.calibration_draws, seed=cfg.seed, progress=progress)
        ranks = sbc(estimator, theta_c, x_c, samples=samples)
        coverage = tarp(estimator, theta_c, x_c, samples=samples, seed=cfg.seed)
        result["sbc"], result["tarp"] = ranks.to_dict(), coverage.to_dict()
    if cfg.predictive:
        check = posterior_predictive(estimator, sim, x_obs[0], cfg.predictive,
                                                 seed=cfg.seed + SEED_OFFSETS["predictive"])
        observables = list(getattr(sim, "observable_names", [])) or [f"x{k}" for k in range(check.p_values.size)]
        result["predictive"] = {"draws": cfg.predictive,
                                "p_values": dict(zip(observables, np.ravel(check.p_values).tolist()))}

    with atomic_path(tmp / "posterior.h5") as path, h5py.File(path, "w") as f:
        f.attrs["parameters"] = names
        f["observation"] = x_obs[0].numpy()
        for label, s in sets.items():
            f[f"samples/{label}"] = s
        if ranks is not None:
            f["sbc_ranks"] = ranks.ranks
    if spec.report.plots:
        plots = tmp / "plots"
        plots.mkdir(exist_ok=True)
        truth = None if cfg.observation is not None else theta_true.tolist()
        bounds = list(zip(sim.space.low.tolist(), sim.space.high.tolist()))
        plot_posterior(sets, names, plots / "posterior.png", truth, bounds,
                       title=f"posterior at x = {', '.join(f'{v:.3g}' for v in x_obs[0].tolist())}")
        plot_training({"posterior": estimator.history}, plots / "posterior_training.png")
        if ranks is not None:
            plot_sbc_ranks(ranks.ranks, ranks.draws, names, plots / "posterior_sbc.png", ranks.p_values.tolist())
            plot_tarp(coverage.alpha, coverage.ecp, plots / "posterior_tarp.png", cfg.calibration, coverage.p_value)
    write_json(tmp / "posterior.json", result)
    return result
