"""Screen variants of hepsbi's NPE or NLE on one sbibm task without the C2ST (minutes instead of half an hour per
cell).

    python benchmarks/sbibm_screen.py bernoulli_glm 1000 '{"flow": "maf", "adjust": "none"}' --seeds 1 2
    python benchmarks/sbibm_screen.py bernoulli_glm 1000 '{}' '{"flow": "maf", "activation": "tanh"}' --method nle
    python benchmarks/sbibm_screen.py gaussian_linear 10000 '{}' '{"members": 5}' --method nre

A variant is a JSON object of PosteriorEstimator options laid over the benchmark's ``NPE`` (``--method nle``:
DensityEstimator options laid over the benchmark's NLE density, ``nle_density``, ``members`` a mixture;
``--method nre``: ``nre_ratio`` options, ``members`` an ensemble). Each is trained on the benchmark's own
simulations (the task, size and seed of benchmarks/sbibm.py) and scored three ways (NLE: all three, ``fresh NLL``
and ``val`` of the likelihood p̂(x | θ), with the dequantisation noise of integer observables drawn once, seeded;
NRE: ``KL`` and ``val``, which misranks NRE variants: benchmarks/README.md). NLE's and NRE's ``KL`` is of 3,000
draws of the benchmark's MCMC for observations 1-4 only (``mcmc_kl``):

* ``KL``: the Gaussian KL divergence of the reference posterior to the estimate, KL(N(μ_ref, Σ_ref) ‖ N(μ̂, Σ̂)) from
  10,000 draws each, mean over observations 1-10 (``mean term``: its ½ Δμᵀ Σ̂⁻¹ Δμ). A proxy for near-Gaussian
  posteriors (gaussian_linear, bernoulli_glm), silent about multimodal ones (SLCP, two moons).
* ``fresh NLL``: −mean log q̂(θ | x) over 20,000 fresh simulations from the prior (simulation seed 99): the
  amortised objective NPE minimises, measured where no validation share of a small budget can.
* ``val``: the lowest validation loss of the training run (the held-out share's NLL), with its best and last epoch.

Simulations come from benchmarks/sbibm_anchor.py in .venv-sbibm, kept in benchmarks/out/sbibm/ (the benchmark's own
data file is reused). benchmarks/README.md has the screens run so far.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sbibm import (
    INTEGER_OBSERVABLES,
    MCMC,
    NPE,
    TASKS,
    anchor,
    nle_density,
    nre_ratio,
    prior_of,
    space_of,
    task_folder,
)

from hepsbi import PosteriorEstimator, TrainingData
from hepsbi.inference import LikelihoodPosterior

#: fresh simulations the amortised NLL is averaged over, and their simulation seed
FRESH, FRESH_SEED = 20_000, 99
#: NRE: MCMC draws per observation and the observations (the first ones) its KL averages over
NRE_DRAWS, NRE_OBSERVATIONS = 3_000, 4


def gaussian_kl(reference: np.ndarray, draws: np.ndarray) -> tuple[float, float]:
    """KL(N(μ₀, Σ₀) ‖ N(μ₁, Σ₁)) = ½ [tr(Σ₁⁻¹ Σ₀) − d + log det Σ₁ − log det Σ₀ + Δμᵀ Σ₁⁻¹ Δμ] of the Gaussians fitted to
    ``reference`` (n, d) and ``draws`` (m, d), and its mean term ½ Δμᵀ Σ₁⁻¹ Δμ."""
    delta = draws.mean(0) - reference.mean(0)
    cov0, cov1 = np.cov(reference.T), np.cov(draws.T)
    inverse = np.linalg.inv(cov1)
    mean_term = 0.5 * float(delta @ inverse @ delta)
    logdet = np.linalg.slogdet(cov1)[1] - np.linalg.slogdet(cov0)[1]
    return 0.5 * float(np.trace(inverse @ cov0) - len(delta) + logdet) + mean_term, mean_term


def data_file(task: str, n: int, seed: int) -> np.lib.npyio.NpzFile:
    """The simulations of (task, n, seed), simulated once (the benchmark's own file when it exists)."""
    path = task_folder(task, n, seed) / "data.npz"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        anchor("simulate", task, str(n), str(seed), str(path))
    return np.load(path)


def screen(task: str, n: int, variant: dict, seed: int, data_seed: int = 1) -> dict[str, object]:
    """Train one variant with one training seed and score it (module docstring)."""
    data, fresh = data_file(task, n, data_seed), data_file(task, FRESH, FRESH_SEED)
    start = time.perf_counter()
    est = PosteriorEstimator(space_of(data), **{**NPE, **variant, "seed": seed, "progress": False})
    est.fit(torch.as_tensor(data["theta"]), torch.as_tensor(data["x"]))
    seconds = time.perf_counter() - start
    gen = torch.Generator().manual_seed(seed)
    kls = [gaussian_kl(ref, est.sample(obs, ref.shape[0], generator=gen).numpy())
           for obs, ref in zip(data["observations"], data["reference"])]
    with torch.no_grad():
        log_q = est.model.log_prob(torch.as_tensor(fresh["theta"]).float(), torch.as_tensor(fresh["x"]).float())
    return {"task": task, "n": n, "variant": variant, "seed": seed, "KL": float(np.mean([k for k, _ in kls])),
            "mean term": float(np.mean([m for _, m in kls])), "fresh NLL": float(-log_q.mean()),
            "val": min(est.history.val_loss), "epochs": [est.history.best_epoch, len(est.history.val_loss)],
            "seconds": seconds}


def screen_nle(task: str, n: int, variant: dict, seed: int, data_seed: int = 1) -> dict[str, object]:
    """Train one NLE density variant with one training seed; its validation loss and fresh NLL (module docstring)."""
    data, fresh = data_file(task, n, data_seed), data_file(task, FRESH, FRESH_SEED)
    start = time.perf_counter()
    space = space_of(data)
    est = nle_density(task, seed, **variant).fit(TrainingData.simulations(torch.as_tensor(data["theta"]),
                                                                          torch.as_tensor(data["x"]), space))
    seconds = time.perf_counter() - start
    x = torch.as_tensor(fresh["x"])
    integer = INTEGER_OBSERVABLES.get(task, [])
    if integer:  # the dequantisation the validation loss saw, drawn once
        mask = torch.tensor([float(name in integer) for name in est.features])
        noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(FRESH_SEED), dtype=x.dtype) - 0.5
        x = x + noise * mask.to(x.dtype)
    log_p = est.log_prob(x, torch.as_tensor(fresh["theta"]))
    kl, mean_term = mcmc_kl(est.log_prob, data, seed)
    return {"task": task, "n": n, "method": "nle", "variant": variant, "seed": seed, "KL": kl, "mean term": mean_term,
            "fresh NLL": float(-log_p.mean()), "val": est.history.kept_val_loss,
            "epochs": [est.history.best_epoch, len(est.history.val_loss)], "seconds": seconds}


def mcmc_kl(log_likelihood: Callable[..., Any], data: np.lib.npyio.NpzFile, seed: int) -> tuple[float, float]:
    """The Gaussian KL (and its mean term) of LikelihoodPosterior's draws with the benchmark's MCMC settings to the
    reference, NRE_DRAWS draws per observation, mean over observations 1-NRE_OBSERVATIONS."""
    posterior = LikelihoodPosterior(log_likelihood, prior_of(data, space_of(data)), **MCMC)
    gen = torch.Generator().manual_seed(seed)
    kls = [gaussian_kl(ref, posterior.sample(obs[None], NRE_DRAWS, generator=gen).numpy())
           for obs, ref in list(zip(data["observations"], data["reference"]))[:NRE_OBSERVATIONS]]
    return float(np.mean([k for k, _ in kls])), float(np.mean([m for _, m in kls]))


def screen_nre(task: str, n: int, variant: dict, seed: int, data_seed: int = 1) -> dict[str, object]:
    """Train one NRE variant (``nre_ratio`` options; ``members``: an ensemble) with one training seed; the Gaussian KL
    of its MCMC posterior (NRE_DRAWS draws, observations 1-NRE_OBSERVATIONS) and its validation loss (an ensemble's:
    its first member's)."""
    data = data_file(task, n, data_seed)
    start = time.perf_counter()
    ratio = nre_ratio(data, seed, **variant)
    seconds = time.perf_counter() - start
    kl, mean_term = mcmc_kl(ratio.log_ratio, data, seed)
    return {"task": task, "n": n, "method": "nre", "variant": variant, "seed": seed, "KL": kl, "mean term": mean_term,
            "val": ratio.history.kept_val_loss, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=TASKS)
    parser.add_argument("n", type=int)
    parser.add_argument("variants", nargs="+", help="JSON objects of PosteriorEstimator options ('{}': NPE itself; --method nle: "
                        "DensityEstimator options)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--method", choices=["npe", "nle", "nre"], default="npe")
    args = parser.parse_args()
    torch.set_num_threads(1)
    screen_of = {"npe": screen, "nle": screen_nle, "nre": screen_nre}[args.method]
    for text in args.variants:
        for seed in args.seeds:
            row = screen_of(args.task, args.n, json.loads(text), seed)
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)


if __name__ == "__main__":
    main()
