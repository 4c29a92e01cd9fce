"""The sbibm side of benchmarks/sbibm.py: runs in its own environment (.venv-sbibm: sbibm 1.1.0, sbi 0.27, see
`make bench-sbibm`), never imports hepsbi, and talks to benchmarks/sbibm.py through .npz and .json files.

    python sbibm_anchor.py simulate TASK N SEED OUT.npz      prior draws, simulations, observations 1-10, references
    python sbibm_anchor.py sbi TASK DATA.npz OUT.npz [nsf]    sbi's NPE (its defaults, or NSF), 10k draws per observation
    python sbibm_anchor.py c2st DATA.npz SAMPLES.npz OUT.json sbibm's C2ST of every sample set against the reference
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

# benchmarks/sbibm.py would shadow the sbibm package: drop this folder from the import path
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import torch  # noqa: E402

OBSERVATIONS = range(1, 11)
DRAWS = 10_000


def _task(name: str):
    import sbibm

    return sbibm.get_task(name)


def _prior(task) -> dict[str, np.ndarray]:
    """The prior as arrays: uniform (low, high) or normal (loc, covariance), and a box holding all but ~1e-9 of it."""
    dist = task.get_prior_dist()
    base = getattr(dist, "base_dist", dist)
    if isinstance(base, torch.distributions.Uniform):
        low, high = base.low.double().numpy(), base.high.double().numpy()
        return {"prior_kind": np.array("uniform"), "prior_low": low, "prior_high": high, "box_low": low, "box_high": high}
    if isinstance(base, torch.distributions.MultivariateNormal):
        loc, cov = base.loc.double().numpy(), base.covariance_matrix.double().numpy()
        half = 7.0 * np.sqrt(np.diag(cov))
        return {"prior_kind": np.array("normal"), "prior_loc": loc, "prior_cov": cov, "box_low": loc - half, "box_high": loc + half}
    raise SystemExit(f"unsupported prior {dist!r}")


def simulate(name: str, n: int, seed: int, out: str) -> None:
    task = _task(name)
    torch.manual_seed(seed)
    theta = task.get_prior()(num_samples=n)
    x = task.get_simulator()(theta)
    arrays = {"theta": theta.double().numpy(), "x": x.double().numpy(),
              "observations": np.stack([task.get_observation(i)[0].double().numpy() for i in OBSERVATIONS]),
              "true_theta": np.stack([task.get_true_parameters(i)[0].double().numpy() for i in OBSERVATIONS]),
              "reference": np.stack([task.get_reference_posterior_samples(i)[:DRAWS].double().numpy()
                                     for i in OBSERVATIONS]),
              "parameter_names": np.array(list(task.get_labels_parameters())), **_prior(task)}
    np.savez(out + ".tmp.npz", **arrays)
    os.replace(out + ".tmp.npz", out)


def run_sbi(name: str, data_file: str, out: str, estimator: str = "default") -> None:
    """sbi's NPE on the simulations of ``data_file``: its default density estimator (MAF in 0.27), or ``nsf`` (the
    sbibm paper's choice)."""
    from sbi.inference import NPE

    task = _task(name)
    data = np.load(data_file)
    os.chdir(Path(out).resolve().parent)  # sbi writes its training logs (sbi-logs/) into the working directory
    start = time.perf_counter()
    options = {} if estimator == "default" else {"density_estimator": estimator}
    inference = NPE(prior=task.get_prior_dist(), show_progress_bars=False, **options)
    theta = torch.as_tensor(data["theta"], dtype=torch.float32)
    x = torch.as_tensor(data["x"], dtype=torch.float32)
    estimator = inference.append_simulations(theta, x).train()
    posterior = inference.build_posterior(estimator)
    trained = time.perf_counter() - start
    samples = np.stack([posterior.sample((DRAWS,), x=torch.as_tensor(obs, dtype=torch.float32)[None],
                                         show_progress_bars=False).double().numpy() for obs in data["observations"]])
    np.savez(out + ".tmp.npz", npe=samples, train_seconds=trained, sample_seconds=time.perf_counter() - start - trained)
    os.replace(out + ".tmp.npz", out)


def run_c2st(data_file: str, samples_file: str, out: str) -> None:
    from sbibm.metrics import c2st

    reference = np.load(data_file)["reference"]
    samples = np.load(samples_file)
    scores = {}
    for key in samples.files:
        if samples[key].ndim != 3:
            continue
        scores[key] = [float(c2st(torch.as_tensor(reference[i], dtype=torch.float32),
                                  torch.as_tensor(samples[key][i][:DRAWS], dtype=torch.float32), seed=i)[0])
                       for i in range(min(len(reference), len(samples[key])))]  # the first observations
    with open(out + ".tmp", "w") as f:
        json.dump(scores, f)
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    torch.set_num_threads(1)
    command, *args = sys.argv[1:]
    if command == "simulate":
        simulate(args[0], int(args[1]), int(args[2]), args[3])
    elif command == "sbi":
        run_sbi(*args)
    elif command == "c2st":
        run_c2st(*args)
    else:
        raise SystemExit(__doc__)
