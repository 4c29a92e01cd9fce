r"""CLs and upper limits of a run's learned likelihood on one parameter (``hepsbi limits RUN_DIR``).

The run's own unbinned model is rebuilt from its directory — its spec, event pool and trained estimator — with the
spec's systematics: the Asimov dataset at θ_true (the expected result), ν(θ) from the pool, every other parameter
and every nuisance parameter profiled. The test is q̃ on the parameter's non-negative values (arXiv:1007.1727);
``negative`` tests its negative values instead (the likelihood in −θ_k). For a contact interaction
c = 4π η / Λ² (TeV⁻², η = ±1) a limit on |c| is a limit on the scale, Λ > √(4π / c_limit).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from hepsbi.data.events import Events
from hepsbi.errors import SpecError
from hepsbi.inference.hypotest import Hypotester
from hepsbi.inference.unbinned import negated
from hepsbi.simulators.protocol import is_weighted
from hepsbi.workflow.inputs import prepare, published_estimator, published_labels, weighted_analysis
from hepsbi.workflow.spec import load_spec

__all__ = ["run_limits"]


def run_limits(run_dir: str | os.PathLike[str], poi: str | None = None, label: str | None = None,
               negative: bool = False, points: int = 11) -> dict[str, Any]:
    """The 95 % CL upper limits (observed on the run's Asimov dataset, and the expected band) on ``poi`` (default:
    the first parameter) from estimator ``label`` of a finished run (default: the run's primary one), and the CLs
    scan behind them (``points`` values up to the parameter's range, for a Brazil plot).

    Returns ``{"poi", "sign", "likelihood", "upper_limit_obs", "upper_limit_exp" (−2σ … +2σ), "scan_mu",
    "scan_cls_obs", "scan_cls_exp"}``, plus ``"scale_tev"`` (Λ limits) for the contact-interaction model."""
    run = Path(run_dir)
    if not (run / "spec.yaml").is_file() or not (run / "results.json").is_file():
        raise SpecError(f"{run}: not a finished run directory (no spec.yaml or results.json)")
    spec = load_spec(run / "spec.yaml")
    sim, theta_true = prepare(spec)
    if not is_weighted(sim):
        raise SpecError(f"{run}: limits from a run need a weighted simulator (an event pool with the rate ν(θ)); "
                        f"{spec.simulator.name!r} has none")
    names = list(sim.space.names)
    poi = poi or names[0]
    if poi not in names:
        raise SpecError(f"--poi {poi!r}: not a parameter of this run; it has {names}")
    available = published_labels(run)
    label = label or (spec.training.estimators[0].label or spec.training.estimators[0].method)
    if label not in available or label == "sally":
        raise SpecError(f"--label {label!r}: not a learned likelihood of this run; it has "
                        f"{[a for a in available if a != 'sally']}")
    sim.use_events(Events.load(run / "data" / "events.h5"))  # type: ignore[attr-defined]
    estimator = published_estimator(run, label)
    model = weighted_analysis(spec, sim, theta_true).models({label: estimator.log_ratio_of_theta})[label]
    if negative:
        model = negated(model, poi)
    parameter = sim.space.parameters[names.index(poi)]
    high = -parameter.low if negative else parameter.high
    low = 0.01 * high  # at 0 the test has no power (q_A = 0)
    # the fits stay where the estimator was trained: the prior box (in −θ_k for the negative side)
    limits = {p.name: (p.low, p.high) for p in sim.space.parameters}
    if negative:
        limits[poi] = (-parameter.high, -parameter.low)
    tester = Hypotester(model, poi, limits=limits)  # the limits and the scan share the fits that do not depend on μ
    obs, expected = tester.upper_limit((low, high))
    sign = -1.0 if negative else 1.0
    scan = np.linspace(low, high, points)
    tests = [tester(float(mu)) for mu in scan]
    out: dict[str, Any] = {
        "poi": poi, "sign": "negative" if negative else "positive", "likelihood": label,
        "upper_limit_obs": sign * obs, "upper_limit_exp": [sign * e for e in expected],
        "scan_mu": [sign * float(v) for v in scan], "scan_cls_obs": [t.cls_obs for t in tests],
        "scan_cls_exp": [list(t.cls_exp) for t in tests],
    }
    if spec.simulator.name == "drell_yan":  # c = 4π η / Λ²: a bound on |c| is a bound on Λ
        out["scale_tev"] = {"observed": math.sqrt(4 * math.pi / obs),
                            "expected": [math.sqrt(4 * math.pi / e) for e in expected]}
    return out
