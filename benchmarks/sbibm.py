"""hepsbi's posteriors on the sbibm tasks (Lueckmann et al., AISTATS 2021, arXiv:2101.04653), scored by sbibm's own
C2ST against its reference posteriors, with sbi 0.27's NPE trained on the same simulations in the same run.

    make bench-sbibm                                     # builds .venv-sbibm (sbibm 1.1.0, sbi 0.27), then runs this
    python benchmarks/sbibm.py --tasks two_moons --sizes 1000 --methods npe sbi_npe
    python benchmarks/sbibm.py --check                   # C2ST 0.5 ideal; fails when a target is missed
    python benchmarks/sbibm.py --cached                  # the table of what is scored so far (a run resumes)
    python benchmarks/sbibm.py --cached --markdown       # the same as the README's table

sbibm pins an old sbi, so it lives in its own environment (.venv-sbibm) and never meets hepsbi: the helper
benchmarks/sbibm_anchor.py, run there, simulates each task (prior draws, simulations, observations 1-10 and the
reference posterior samples, into an .npz), trains sbi's NPE with its defaults on the same (θ, x) and computes the
C2ST (an MLP classifier, 5-fold accuracy; 0.5 = indistinguishable) of every sample set. This script trains
hepsbi's estimators in the main environment and draws 10,000 samples per observation:

* ``npe``: :class:`hepsbi.PosteriorEstimator`, two recipes trained with sbi's schedule and the one with the lower
  validation loss kept (``NPE_CANDIDATES``): five spline flows on the residual of θ's linear regression on x
  (``NPE``), or five MAFs with tanh conditioners on θ itself.
* ``nle``: :class:`hepsbi.DensityEstimator` (``nde``), two flows trained and the one with the lower validation loss
  kept (``NLE_CANDIDATES``: a spline flow or a MAF with tanh conditioners) + :class:`hepsbi.inference.LikelihoodPosterior`.
* ``nre``: :class:`hepsbi.RatioEstimator` (``carl``, unanchored, on ``TrainingData.contrastive``: (θ, x) pairs
  against (θ, x') with x' from 20 shuffles, so r̂ = p(x | θ)/p(x); hidden 128 × 3, batch 64; an ensemble of 5: ``NRE``) +
  :class:`~hepsbi.inference.LikelihoodPosterior`.
* ``sbi_npe``: sbi 0.27's NPE with its defaults (MAF), the anchor; ``sbi_npe_nsf``: the same with the spline flow
  the paper's NPE used.

Everything a step makes is kept in benchmarks/out/sbibm/TASK_N_seedS/ and reused (a rerun resumes; --fresh redoes); each
cell's scores and settings also go to sbibm_cells.json beside the table (results/ with HEPSBI_RECORD=1), which is
tracked, so a fresh checkout tabulates what was measured and computes only what is missing or made otherwise.
The table gives the mean ± standard deviation of C2ST over the 10 observations and the paper's means (NPE with
NSF, NLE and NRE as the paper ran them) beside it.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _table import SCRATCH, output_dir, report  # noqa: E402

from hepsbi import (  # noqa: E402
    DensityEstimator,
    Parameter,
    ParameterSpace,
    PosteriorEstimator,
    RatioEstimator,
    TrainingData,
)
from hepsbi.estimators import RatioEnsemble, select_by_validation  # noqa: E402
from hepsbi.files import atomic_path, write_json  # noqa: E402
from hepsbi.inference import LikelihoodPosterior  # noqa: E402

HERE = Path(__file__).resolve().parent
ANCHOR_PYTHON = HERE.parent / ".venv-sbibm" / "bin" / "python"
TASKS = ["two_moons", "slcp", "gaussian_linear", "gaussian_mixture", "bernoulli_glm"]
METHODS = ["npe", "nle", "nre", "sbi_npe", "sbi_npe_nsf"]
DRAWS = 10_000
#: NPE: a mixture of five spline flows (PosteriorEstimator(members=5)) on the residual of θ's linear regression on x
#: (adjust="linear"), trained as sbi trains its NPE (batch 50, rate 5e-4, 10 % held out, stop 20 epochs after the
#: best validation loss and keep that epoch). On gaussian_linear at 1e3 one flow's posterior wanders with its initial
#: weights (Gaussian KL to the reference 0.35-0.53 over five seeds; C2ST 0.627 with the default cosine schedule, which
#: overfits at 800 training events); a mixture of five trained so: KL 0.24, C2ST 0.577 (sbi's MAF: KL 0.27, C2ST
#: 0.564), most of the KL in the posterior's location, which a spline flow learns knot by knot; with the regression
#: adjustment KL 0.11. On two moons at 1e3 the mixture is neutral (C2ST 0.640 against 0.631 for one flow) and the
#: adjustment takes it to 0.588. benchmarks/README.md has the experiments.
NPE = {"members": 5, "adjust": "linear", "schedule": "plateau", "batch_size": 50, "learning_rate": 5e-4,
       "validation_fraction": 0.1, "patience": 20}
#: the benchmark's NPE trains two recipes and keeps the one with the lower validation loss (select_by_validation):
#: ``NPE`` and five MAFs with tanh conditioners on standardised θ, sbi's flow. On bernoulli_glm at 1e3 the second is
#: the better posterior (Gaussian KL 1.22 and 1.34 for two seeds against 2.27; sbi 1.69) and its validation loss says
#: so (3.28 against 3.71); on two moons only the spline flows draw the crescents (3.25 against 2.38, lower wins).
NPE_CANDIDATES = [NPE, {**NPE, "flow": "maf", "adjust": "none", "activation": "tanh"}]
#: the benchmark's NLE trains two densities p̂(x | θ) (``nle_density``, the estimator's own schedule) and keeps the one
#: with the lower validation loss: the spline flow (DensityEstimator's default) and a MAF with tanh conditioners
#: (sbi's NLE flow). On bernoulli_glm at 1e3 the second is the better likelihood: NLL of 20,000 fresh simulations
#: 25.69 against 26.69, validation loss 25.39 against 26.14 (sbibm_screen.py --method nle)
NLE_CANDIDATES: list[dict[str, object]] = [{}, {"flow": "maf", "activation": "tanh"}]
#: NRE: shuffled copies of the simulations as the marginal class (TrainingData.contrastive), the classifier's hidden
#: layers and batch size. The ratio estimators' defaults (64 × 3, batch 256) are sized for smooth physics ratios;
#: on two moons (a likelihood ring 0.01 wide) they stall at C2ST 0.82 with 5 shuffles (observations 1-3, 1e4); 128 × 3
#: and batch 64 give 0.53, and 20 shuffles take 1e3 from 0.81 to 0.62 (benchmarks/README.md). ``members``: the mean
#: log r̂ of 5 classifiers (seeds and shuffles seed + k, ``nre_ratio``): one classifier's posterior on gaussian_linear
#: 1e4 sits off the reference by a Gaussian KL of 0.25 (seeds 1, 2: 0.252, 0.231), five take it to 0.16 and 0.13
#: (sbibm_screen.py --method nre; the exact likelihood through the same MCMC: 0.027)
NRE = {"negatives": 20, "hidden": (128, 128, 128), "batch_size": 64, "members": 5}
#: NLE and NRE: LikelihoodPosterior's walkers and SIR start (its thinning "auto"). SLCP's four symmetric modes get
#: their share from the start, which 32 walkers set only to ±8 % per mode; two moons' posterior (two thin crescents)
#: mixes slowly (τ ≈ 1000 steps): the evaluations needed grow as draws × τ whatever the walkers, and 1024 walkers
#: take them in 8 × fewer, larger batches than 128
MCMC = {"walkers": 1024, "init": 100_000}
#: NLE: the observables that take integer values, by task, which the density estimator dequantises (a flow on a
#: count puts unbounded density on the integers): bernoulli_glm's first summary is the spike count of 100 trials
INTEGER_OBSERVABLES = {"bernoulli_glm": ["x0"]}
#: the paper's mean C2ST (Lueckmann et al. 2021, Fig. 2; gaussian_mixture from the rerun) by method, task and size
PAPER = {
    "npe": {"two_moons": {1000: .725, 10000: .606, 100000: .542}, "slcp": {1000: .975, 10000: .901, 100000: .831},
            "gaussian_linear": {1000: .694, 10000: .552, 100000: .506},
            "gaussian_mixture": {1000: .716, 10000: .615, 100000: .548},
            "bernoulli_glm": {1000: .863, 10000: .678, 100000: .559}},
    "nre": {"two_moons": {1000: .822, 10000: .761, 100000: .629}, "slcp": {1000: .972, 10000: .947, 100000: .919},
            "gaussian_linear": {1000: .672, 10000: .560, 100000: .536},
            "gaussian_mixture": {1000: .777, 10000: .748, 100000: .735},
            "bernoulli_glm": {1000: .899, 10000: .812, 100000: .751}},
    "nle": {"two_moons": {1000: .773, 10000: .713, 100000: .668}, "slcp": {1000: .946, 10000: .771, 100000: .699},
            "gaussian_linear": {1000: .650, 10000: .555, 100000: .515},
            "gaussian_mixture": {1000: .740, 10000: .723, 100000: .690},
            "bernoulli_glm": {1000: .740, 10000: .605, 100000: .545}},
}
#: the methods that train candidate recipes and keep the lowest validation loss
SELECTED = {"npe": NPE_CANDIDATES, "nle": NLE_CANDIDATES}
PAPER["sbi_npe"] = PAPER["sbi_npe_nsf"] = PAPER["npe"]


class GaussianPrior:
    """A correlated normal prior (gaussian_linear, bernoulli_glm): ``sample_prior`` and ``log_prior``."""

    def __init__(self, loc: np.ndarray, cov: np.ndarray):
        self.dist = torch.distributions.MultivariateNormal(torch.as_tensor(loc), torch.as_tensor(cov))

    def sample_prior(self, n: int, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(n, self.dist.loc.shape[0], generator=generator, dtype=torch.float64)
        return self.dist.loc + z @ self.dist.scale_tril.T

    def log_prior(self, theta: torch.Tensor) -> torch.Tensor:
        return self.dist.log_prob(torch.as_tensor(theta, dtype=torch.float64))


def anchor(*args: str) -> None:
    """Run benchmarks/sbibm_anchor.py in .venv-sbibm."""
    if not ANCHOR_PYTHON.exists():
        raise SystemExit(f"{ANCHOR_PYTHON} is missing: `make bench-sbibm` builds it")
    subprocess.run([str(ANCHOR_PYTHON), str(HERE / "sbibm_anchor.py"), *args], check=True,
                   env={**os.environ, "PYTHONWARNINGS": "ignore"})


def space_of(data: np.lib.npyio.NpzFile) -> ParameterSpace:
    """The prior's box (a uniform prior's own, a normal prior's ±7σ) as a ParameterSpace, prior uniform there.

    (θ_ref, the centre, plays no role: NRE's network is unanchored.)"""
    low, high = data["box_low"], data["box_high"]
    return ParameterSpace([Parameter(f"theta_{k + 1}", float(lo), float(hi), reference=float(0.5 * (lo + hi)))
                           for k, (lo, hi) in enumerate(zip(low, high))])


def prior_of(data: np.lib.npyio.NpzFile, space: ParameterSpace) -> object:
    return space if str(data["prior_kind"]) == "uniform" else GaussianPrior(data["prior_loc"], data["prior_cov"])


def selection(method: str, task: str, data: np.lib.npyio.NpzFile,
              seed: int) -> tuple[PosteriorEstimator | DensityEstimator, dict[str, object]]:
    """The benchmark's NPE (``npe``: a posterior) or NLE density (``nle``): every recipe of NPE_CANDIDATES or
    NLE_CANDIDATES trained on the task's simulations and the one with the lowest validation loss kept; with the choice
    (its index and every candidate's loss). Candidate 0 trains exactly as the method did before the choice existed."""
    space = space_of(data)
    theta, x = torch.as_tensor(data["theta"], dtype=torch.float64), torch.as_tensor(data["x"], dtype=torch.float64)
    candidates: list[PosteriorEstimator | DensityEstimator] = [
        PosteriorEstimator(space, **recipe, seed=seed, progress=False) if method == "npe"
        else nle_density(task, seed, **recipe) for recipe in SELECTED[method]]
    chosen = select_by_validation(candidates, TrainingData.simulations(theta, x, space, what=f"{method} selection"))
    return chosen.best, {"chosen": chosen.index, "validation_losses": chosen.losses}


def nle_density(task: str, seed: int, **options: object) -> DensityEstimator:
    """The benchmark's NLE density p̂(x | θ) for a task (untrained), ``options`` laid over it."""
    return DensityEstimator(**{"method": "nde", "dequantise": INTEGER_OBSERVABLES.get(task, False), "seed": seed,
                               "progress": False, **options})


def hepsbi_samples(method: str, task: str, data: np.lib.npyio.NpzFile, seed: int,
                   chosen: PosteriorEstimator | DensityEstimator | None = None) -> np.ndarray:
    """(10, DRAWS, p) posterior draws of one hepsbi method for observations 1-10 (``chosen``: the NPE or NLE density
    already selected)."""
    space = space_of(data)
    gen = torch.Generator().manual_seed(seed)
    if method in SELECTED and chosen is None:
        chosen = selection(method, task, data, seed)[0]
    if method == "npe":
        assert isinstance(chosen, PosteriorEstimator)
        return np.stack([chosen.sample(obs, DRAWS, generator=gen).numpy() for obs in data["observations"]])
    if method == "nle":
        assert isinstance(chosen, DensityEstimator)
        posterior = LikelihoodPosterior(chosen.log_prob, prior_of(data, space), **MCMC)
    elif method == "nre":
        posterior = LikelihoodPosterior(nre_ratio(data, seed).log_ratio, prior_of(data, space), **MCMC)
    else:
        raise ValueError(method)
    return np.stack([posterior.sample(obs[None], DRAWS, generator=gen).numpy() for obs in data["observations"]])


def nre_ratio(data: np.lib.npyio.NpzFile, seed: int, **options: object) -> RatioEstimator | RatioEnsemble:
    """The benchmark's NRE classifier r̂(x | θ) = p(x | θ)/p(x), trained on a task's simulations: ``carl`` on
    (θ_i, x_i) against (θ_i, x_π(i)) (``TrainingData.contrastive``), the recipe ``NRE`` with ``options`` laid over it.
    ``members`` > 1: that many classifiers, member k with seed + k for its weights and its permutations, and their
    mean log r̂ (``RatioEnsemble``); member 0 is the single classifier of ``members`` = 1."""
    recipe: dict[str, Any] = {**NRE, **options}
    members, negatives = int(recipe.pop("members", 1)), int(recipe.pop("negatives"))
    space = space_of(data)
    theta, x = torch.as_tensor(data["theta"], dtype=torch.float64), torch.as_tensor(data["x"], dtype=torch.float64)
    fitted = [RatioEstimator(method="carl", anchored=False, seed=seed + k, progress=False, **recipe)
              .fit(TrainingData.contrastive(theta, x, space, negatives=negatives, seed=seed + k))
              for k in range(members)]
    return fitted[0] if members == 1 else RatioEnsemble(fitted)


def settings_of(method: str, task: str, first_recipe: bool = False) -> str:
    """What a method's draws on a task depend on besides the data (a cached file made otherwise is redone).

    ``first_recipe``: the settings a cell of a selected method (``SELECTED``) was stored with when its first recipe
    was the only one; such a cell still stands when the selection picks that recipe."""
    if method == "npe" and first_recipe:
        return json.dumps(NPE, sort_keys=True)
    integers = {"dequantise": INTEGER_OBSERVABLES[task]} if task in INTEGER_OBSERVABLES else {}
    selected = {} if first_recipe or method not in SELECTED else {"select_by_validation": SELECTED[method]}
    settings = {"npe": {}, "nre": {**NRE, **MCMC, "thin": "auto"}, "nle": {**MCMC, "thin": "auto", **integers}}
    return json.dumps({**settings.get(method, {}), **selected}, sort_keys=True)


def cell_store() -> Path:
    """The scores of every cell measured so far, with the settings and seed they were made with: one JSON file beside
    the recorded table (benchmarks/results/ with HEPSBI_RECORD=1, else benchmarks/out/). It outlives the draws in
    benchmarks/out/sbibm/, which are megabytes per cell and not tracked, so a later checkout tabulates and resumes
    from it."""
    return output_dir() / "sbibm_cells.json"


def read_cells() -> dict[str, dict[str, object]]:
    path = cell_store()
    return json.loads(path.read_text()) if path.exists() else {}


def record_cell(key: str, scores: np.ndarray, seconds: float, settings: str,
                extra: dict[str, object] | None = None) -> dict[str, object]:
    """Add one scored cell to the store (atomically, the other cells kept, under a lock: two runs may share it) and
    return it; ``extra``: what else the cell records (NPE, NLE: which recipe was chosen)."""
    cell_store().parent.mkdir(parents=True, exist_ok=True)
    with open(cell_store().with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cells = read_cells()
        cells[key] = {"per_observation": scores.tolist(), "seconds": seconds, "settings": settings,
                      "date": time.strftime("%Y-%m-%d"), **(extra or {})}
        write_json(cell_store(), dict(sorted(cells.items())))
    return cells[key]


def current(samples_file: Path, method: str, task: str) -> bool:
    """Whether the draws in ``samples_file`` exist and were made with the method's present settings."""
    if not samples_file.exists():
        return False
    with np.load(samples_file) as saved:
        return (str(saved["settings"]) if "settings" in saved.files else "{}") == settings_of(method, task)


def task_folder(task: str, n: int, seed: int) -> Path:
    """Where the simulations (``data.npz``) and every method's draws and scores of (task, n, seed) are kept."""
    return SCRATCH / "sbibm" / f"{task}_{n}_seed{seed}"


def run_size(task: str, n: int, methods: list[str], seed: int, fresh: bool, cached: bool = False) -> list[dict[str, object]]:
    """The rows of one task and simulation budget; ``cached``: only those already scored (nothing is computed).

    A cell scored before with the present settings and seed is taken from the cell store; one made with other
    settings is redone (``cached``: shown, marked †)."""
    folder = task_folder(task, n, seed)
    data_file = folder / "data.npz"
    rows = []
    for method in methods:
        key = f"{task}/{n}/{method}/seed{seed}"
        cell = read_cells().get(key)
        stale = cell is not None and cell["settings"] != settings_of(method, task)
        if cached and cell is None:
            continue
        if stale and cached:
            print(f"{task} {n} {method}: made with other settings (marked †)", flush=True)
        if fresh or cell is None or (stale and not cached):
            if stale:
                print(f"{task} {n} {method}: made with other settings, redoing", flush=True)
            folder.mkdir(parents=True, exist_ok=True)
            if fresh or not data_file.exists():
                anchor("simulate", task, str(n), str(seed), str(data_file))
            data = np.load(data_file)
            samples_file, scores_file = folder / f"{method}.npz", folder / f"{method}.c2st.json"
            redraw = fresh or not current(samples_file, method, task)
            start = time.perf_counter()
            chosen, choice = None, None
            if method in SELECTED and redraw:
                chosen, choice = selection(method, task, data, seed)
                print(f"{task} {n} {method}: recipe {choice['chosen']} chosen (validation losses "
                      f"{[round(v, 4) for v in choice['validation_losses']]})", flush=True)
                if (stale and not fresh and choice["chosen"] == 0
                        and cell["settings"] == settings_of(method, task, first_recipe=True)):
                    # the stored cell was made by recipe 0 alone, with this seed and data, by the code of its date
                    # (kept). The same code redraws bit for bit, but later changes that reorder floating-point sums
                    # move the draws, and the C2ST by its own noise (two moons 1e3: 0.599 ± 0.035 today against the
                    # kept 0.588 ± 0.036)
                    cell = record_cell(key, np.asarray(cell["per_observation"]), float(cell["seconds"]),
                                       settings_of(method, task), {**choice, "date": cell["date"]})
                    rows.append(row_of(task, n, method, cell))
                    print(f"{task} {n} {method}: the stored cell is recipe 0's, kept: C2ST {rows[-1]['c2st']:.3f}",
                          flush=True)
                    continue
            if redraw:
                if method.startswith("sbi_"):
                    flow = "nsf" if method == "sbi_npe_nsf" else "default"
                    anchor("sbi", task, str(data_file), str(folder / f"{method}_raw.npz"), flow)
                    samples = np.load(folder / f"{method}_raw.npz")["npe"]
                else:
                    samples = hepsbi_samples(method, task, data, seed, chosen)
                with atomic_path(samples_file) as tmp, open(tmp, "wb") as f:
                    np.savez(f, **{method: samples}, seconds=time.perf_counter() - start,
                             settings=settings_of(method, task), choice=json.dumps(choice))
                scores_file.unlink(missing_ok=True)
            if not scores_file.exists():
                anchor("c2st", str(data_file), str(samples_file), str(scores_file))
            with np.load(samples_file) as saved:
                seconds, made = float(saved["seconds"]), json.loads(str(saved["choice"])) if "choice" in saved.files else None
            cell = record_cell(key, np.asarray(json.loads(scores_file.read_text())[method]), seconds,
                               settings_of(method, task), made)
        rows.append(row_of(task, n, method, cell))
        print(f"{task} {n} {method}: C2ST {rows[-1]['c2st']:.3f} ± {rows[-1]['c2st_std']:.3f} "
              f"(paper {rows[-1]['paper']})", flush=True)
    return rows


def row_of(task: str, n: int, method: str, cell: dict[str, object]) -> dict[str, object]:
    """One table row of a stored cell (``current_settings``: made with the method's present settings)."""
    scores = np.asarray(cell["per_observation"])
    paper = PAPER[method][task].get(n)
    return {"task": task, "n_simulations": n, "method": method, "c2st": float(scores.mean()),
            "c2st_std": float(scores.std(ddof=1)), "paper": paper if paper is not None else float("nan"),
            "seconds": float(cell["seconds"]), "per_observation": scores.tolist(),
            "current_settings": cell["settings"] == settings_of(method, task), "recipe": cell.get("chosen")}


def stored_rows(seed: int) -> list[dict[str, object]]:
    """The rows of every cell in the store for one seed, in the order of TASKS, size and METHODS."""
    cells = read_cells()
    keys = [k.split("/") for k in cells if k.endswith(f"/seed{seed}")]
    sizes = sorted({int(n) for _, n, _, _ in keys})
    return [row_of(task, n, method, cells[f"{task}/{n}/{method}/seed{seed}"]) for task in TASKS for n in sizes
            for method in METHODS if f"{task}/{n}/{method}/seed{seed}" in cells]


def other_seeds(row: dict[str, object], seed: int,
                cells: dict[str, dict[str, object]]) -> list[tuple[int, dict[str, object]]]:
    """The rows of the row's task, budget and method among ``cells`` (the cell store) scored with seeds other than
    ``seed`` (the row's) and the present settings (replicates: new simulations and a new training seed), by seed."""
    task, n, method = str(row["task"]), int(row["n_simulations"]), str(row["method"])  # type: ignore[call-overload]
    prefix = f"{task}/{n}/{method}/seed"
    replicates = sorted((int(k[len(prefix):]), row_of(task, n, method, c)) for k, c in cells.items()
                        if k.startswith(prefix) and c["settings"] == settings_of(method, task))
    return [(s, r) for s, r in replicates if s != seed]


def markdown(rows: list[dict[str, object]], tasks: list[str], sizes: list[int], seed: int) -> str:
    """The README's wide table: one line per task and budget, mean ± sd per method, the paper's means beside; † marks
    draws made with settings other than the present ones (a run without --cached redoes them), "(MAF)" an NPE or NLE
    cell whose selection kept the tanh MAF(s), "seed S" a replicate (``--seed S``) beside the row's own seed."""
    stored = read_cells()
    cell = {(r["task"], r["n_simulations"], r["method"]): f"{r['c2st']:.3f} ± {r['c2st_std']:.3f}"
            + (" (MAF)" if r.get("recipe") == 1 else "") + ("" if r["current_settings"] else " †")
            + "".join(f"; seed {s}: {o['c2st']:.3f} ± {o['c2st_std']:.3f}" for s, o in other_seeds(r, seed, stored)) for r in rows}
    columns = [("hepsbi NPE", "npe"), ("sbi NPE (MAF)", "sbi_npe"), ("paper NPE", "paper:npe"),
               ("hepsbi NLE", "nle"), ("paper NLE", "paper:nle"), ("hepsbi NRE", "nre"), ("paper NRE", "paper:nre")]
    lines = ["| task | simulations | " + " | ".join(c for c, _ in columns) + " |", "|---" * (2 + len(columns)) + "|"]
    for task in tasks:
        for n in sizes:
            values = [f"{PAPER[key[6:]][task][n]:.3f}" if key.startswith("paper:") else cell.get((task, n, key), "—")
                      for _, key in columns]
            lines.append(f"| {task} | {n:.0e}".replace("e+0", "e") + " | " + " | ".join(values) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=TASKS, choices=TASKS)
    parser.add_argument("--sizes", nargs="+", type=int, default=[1_000, 10_000])
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fresh", action="store_true", help="redo every step, not only the missing ones")
    parser.add_argument("--cached", action="store_true", help="only tabulate the cells already scored (compute nothing)")
    parser.add_argument("--check", action="store_true", help="exit 1 unless NPE <= paper and <= every sbi row, NLE/NRE "
                        "<= paper")
    parser.add_argument("--markdown", action="store_true", help="also print the README's table (task × method)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [row for task in args.tasks for n in args.sizes
            for row in run_size(task, n, args.methods, args.seed, args.fresh, args.cached)]
    # the recorded table holds every scored cell of this seed (this run's and earlier runs'), not only this run's
    table = [{**r, "C2ST": f"{r['c2st']:.3f} ± {r['c2st_std']:.3f}" + ("" if r["current_settings"] else " †")}
             for r in stored_rows(args.seed)]
    report("sbibm", "C2ST against sbibm's reference posteriors (0.5 ideal; mean ± sd over observations 1-10)",
           ["task", "n_simulations", "method", "C2ST", "paper", "seconds"], table,
           {"draws": DRAWS, "observations": list(range(1, 11))})
    if args.markdown:
        print(markdown(rows, args.tasks, args.sizes, args.seed))
    if args.check:
        misses = [r for r in rows if not r["method"].startswith("sbi_") and not r["c2st"] <= r["paper"]]
        for anchor_row in (r for r in rows if r["method"].startswith("sbi_")):
            misses += [r for r in rows if r["method"] == "npe" and r["task"] == anchor_row["task"]
                       and r["n_simulations"] == anchor_row["n_simulations"] and not r["c2st"] <= anchor_row["c2st"]]
        for r in misses:
            print(f"target missed: {r['task']} {r['n_simulations']} {r['method']} C2ST {r['c2st']:.3f}", file=sys.stderr)
        sys.exit(1 if misses else 0)


if __name__ == "__main__":
    main()
