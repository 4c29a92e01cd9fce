r"""The registry of estimator kinds and training methods: the one place that the spec's method names, the
training graph, ``hepsbi methods`` and the README's table of methods read.

A *kind* is an :class:`~hepsbi.estimators.base.Estimator` subclass (``RatioEstimator``, ``ScoreEstimator``); a
*method* is a way to train one (``alices`` trains a ``RatioEstimator``, ``sally`` a ``ScoreEstimator``), with
what its loss needs from the training data. Adding a kind = one module + one line in :data:`KINDS` and its
methods in :data:`METHODS`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hepsbi.errors import EstimatorError
from hepsbi.estimators.base import Estimator, LogRatioEstimator
from hepsbi.estimators.density import DensityEstimator
from hepsbi.estimators.losses import RATIO_LOSSES
from hepsbi.estimators.morphing import MorphingRatioEstimator
from hepsbi.estimators.persistence import METADATA
from hepsbi.estimators.posterior import PosteriorEstimator
from hepsbi.estimators.ratio import RatioEstimator
from hepsbi.estimators.score import ScoreEstimator
from hepsbi.estimators.signed_mixture import SignedMixtureRatioEstimator

__all__ = ["KINDS", "METHODS", "RATIO_METHODS", "Method", "build_estimator", "load_estimator", "method_table"]

#: estimator kinds by the name saved in ``estimator.json``
KINDS: dict[str, type[Estimator]] = {cls.kind: cls for cls in (RatioEstimator, MorphingRatioEstimator, SignedMixtureRatioEstimator,
                                                                 DensityEstimator, ScoreEstimator, PosteriorEstimator)}


@dataclass(frozen=True)
class Method:
    """A training method: the kind it trains, what its loss needs from the data, its reference."""

    name: str
    kind: type[Estimator]
    needs: frozenset[str]
    reference: str
    summary: str
    #: whether a spec's ``data.balance`` (training weights equal per quantile of an observable) applies
    balance: bool = True

    def row(self) -> tuple[str, str, str, str, str]:
        """(method, kind, needs, summary, reference) as the README's table of methods shows it."""
        needs = ", ".join(sorted(self.needs)) or "—"
        return self.name, self.kind.kind, needs, self.summary, self.reference


METHODS: dict[str, Method] = {
    **{name: Method(name, RatioEstimator, loss.needs, loss.reference, loss.summary) for name, loss in RATIO_LOSSES.items()},
    # Not balanced: its regression must be precise where the expected events are (low m_ll on Drell-Yan). Balanced
    # training left it a noise floor there that biased the Asimov MLE at c_LL = 0.006 to 0.0018 (unbalanced: 0.0062).
    "morphing": Method("morphing", MorphingRatioEstimator, frozenset({"morphing"}), "arXiv:2007.10356",
                       "E[weight polynomial | x]: the exact quadratic θ-dependence", balance=False),
    "smm": Method("smm", SignedMixtureRatioEstimator, frozenset({"y", "both_classes"}), "arXiv:2410.10216",
                  "signed mixture e^{f₊} − e^{f₋}: classifiers of the positive- and negative-weight events at θ against θ_ref"),
    "nde": Method("nde", DensityEstimator, frozenset(), "arXiv:1805.07226",
                  "normalising flow p̂(x | θ) by maximum likelihood; log r̂ = log p̂(x | θ) − log p̂(x | θ_ref)"),
    "scandal": Method("scandal", DensityEstimator, frozenset({"t_xz"}), "arXiv:1805.12244",
                      "nde + α ‖∇_θ log p̂(x | θ) − t_xz‖² on the events drawn at θ"),
    "sally": Method("sally", ScoreEstimator, frozenset({"t_xz"}), "arXiv:1805.00020",
                    "local score t(x | θ_ref) regressed on the joint score"),
}
#: the methods that train a likelihood-ratio estimator (the spec's ``training.estimators[].method``)
RATIO_METHODS: tuple[str, ...] = tuple(name for name, m in METHODS.items() if issubclass(m.kind, LogRatioEstimator))


def build_estimator(method: str, **options: Any) -> Estimator:
    """An untrained estimator for ``method`` with keyword ``options`` (its kind's arguments and training options)."""
    if method not in METHODS:
        raise EstimatorError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    kind = METHODS[method].kind
    if "method" in kind.OPTIONS:
        options = {"method": method, **options}
    return kind(**options)


def load_estimator(path: str | os.PathLike[str], **options: Any) -> Estimator:
    """Load a saved estimator of any kind (read from its ``estimator.json``); ``options`` as for ``load``."""
    meta_file = Path(path) / METADATA
    try:
        kind = json.loads(meta_file.read_text()).get("kind")
    except (OSError, json.JSONDecodeError) as exc:
        raise EstimatorError(f"{path}: not a saved estimator ({exc})") from None
    if kind not in KINDS:
        raise EstimatorError(f"{meta_file}: unknown estimator kind {kind!r}; known: {sorted(KINDS)}")
    return KINDS[kind].load(path, **options)


def method_table() -> list[tuple[str, str, str, str, str]]:
    """One row per method: (method, kind, needs, summary, reference)."""
    return [m.row() for m in METHODS.values()]
