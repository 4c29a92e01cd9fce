r"""Choosing between estimators of one kind by their held-out loss.

Which network suits a problem is an empirical question: on sbibm's bernoulli_glm a mixture of MAFs with smooth
(tanh) conditioners is the better posterior, on two moons only a spline flow draws the crescents. Candidates that
differ in their architecture (:attr:`~hepsbi.estimators.base.Estimator.ARCHITECTURE`: flow, layers, activation,
members, regression adjustment — options that leave the loss's meaning alone) and train with the same seed and
validation share hold out the same rows, so their validation losses at the kept weights,

.. math:: \hat L_j = \frac{1}{|V|} \sum_{i \in V} \ell_j(x_i, θ_i),

estimate the same expected loss (for NPE and NDE the negative log-likelihood, whose minimiser is the true density),
and the lowest wins. The estimate's noise is that of a mean over |V| rows: with 100 held-out simulations it can rank
two close candidates wrongly (benchmarks/README.md, the bernoulli_glm screen), so compare candidates that differ
by more than that, or hold out more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from hepsbi.data.training import TrainingData
from hepsbi.errors import EstimatorError
from hepsbi.estimators.base import Estimator

__all__ = ["Selection", "select_by_validation"]

E = TypeVar("E", bound=Estimator)


@dataclass
class Selection(Generic[E]):
    """The outcome of :func:`select_by_validation`: ``best`` (fitted), its ``index`` among the candidates, and every
    candidate's validation loss at its kept weights (``losses``, in the candidates' order)."""

    best: E
    index: int
    losses: list[float]


def select_by_validation(candidates: Sequence[E], data: TrainingData) -> Selection[E]:
    """Fit every candidate on ``data`` and keep the one with the lowest validation loss (module docstring).

    The candidates must be of one kind, agree on every option outside the kind's ``ARCHITECTURE`` and on the training
    seed and validation share (so they hold out the same rows), and have a validation share. Candidates other than
    the best are fitted too (their losses are returned) and then dropped.

    Example:
        >>> from hepsbi import PosteriorEstimator
        >>> from hepsbi.simulators import GaussianLatent
        >>> sim = GaussianLatent()
        >>> data = TrainingData.from_simulator(sim, n=2000, seed=0)
        >>> chosen = select_by_validation([PosteriorEstimator(sim.space, flow=f, epochs=2, progress=False)
        ...                                for f in ("maf", "nsf")], data)
        >>> len(chosen.losses)
        2
    """
    if not candidates:
        raise EstimatorError("select_by_validation needs at least one candidate")
    first = candidates[0]
    for k, other in enumerate(candidates[1:], start=1):
        if type(other) is not type(first):
            raise EstimatorError(f"candidate {k} is a {type(other).__name__}, candidate 0 a {type(first).__name__}: "
                                 "validation losses of different kinds are not comparable")
        for name in (n for n in first.OPTIONS if n not in first.ARCHITECTURE):
            if getattr(other, name) != getattr(first, name):
                raise EstimatorError(f"candidate {k} has {name}={getattr(other, name)!r}, candidate 0 "
                                     f"{getattr(first, name)!r}: it changes what the loss measures")
        for name in ("seed", "validation_fraction"):
            if getattr(other.config, name) != getattr(first.config, name):
                raise EstimatorError(f"candidate {k} has training option {name}={getattr(other.config, name)!r}, "
                                     f"candidate 0 {getattr(first.config, name)!r}: they would not hold out the "
                                     "same rows")
    if first.config.validation_fraction <= 0:
        raise EstimatorError("select_by_validation needs held-out rows: validation_fraction > 0")
    losses = [candidate.fit(data).history.kept_val_loss for candidate in candidates]
    index = min(range(len(losses)), key=losses.__getitem__)
    return Selection(candidates[index], index, losses)
