r"""Every training loss of hepsbi, in one place.

Conventions. The network gives f = log r̂(x | θ, θ_ref); the implied classifier is ŝ = σ(f), the
probability that x was drawn at θ rather than at θ_ref (equal class priors). Labels: y = 1 for events
drawn at θ, y = 0 for events drawn at θ_ref. Gold from the simulator: the joint log ratio
log r(x, z | θ, θ_ref) and the joint score t(x, z | θ).

Weights. Every loss is a weighted mean ``mean_i(w_i ℓ_i)``. The caller normalises the weights once per
data set to mean 1; a batch is never renormalised, so negative weights keep their sign and their meaning
(a per-batch division by Σw could flip the sign of a gradient).

Each function returns a scalar; the per-event terms are the minimisers' conditional expectations given
x, which is why regressing on joint (latent-level) quantities learns the marginal ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "weighted_mean",
    "carl",
    "rolr",
    "alice",
    "score_mse",
    "NEEDS",
    "RatioLoss",
    "RATIO_LOSSES",
    "ratio_loss",
    "sally",
    "score_scale",
    "quadratic_form_mse",
    "revert",
    "REVERT_OFFSET",
    "SIGNED_FLOOR",
    "signed_ratio",
    "signed_log_ratio",
    "floored_log",
]

#: Default clip of the joint log ratio in the exponential regressions (ROLR, RASCAL): |log r(x,z)| beyond
#: it is set to ±LOG_R_CLIP. A smaller clip lowers the variance of the loss (a few events with large
#: r(x,z) dominate the squared error) at the price of a bias for those events; see ``RatioEstimator``.
LOG_R_CLIP = 10.0
#: The prediction is clamped too, only so that exp(f) cannot overflow in float32.
_F_CLAMP = 30.0


def weighted_mean(values: Tensor, weights: Tensor) -> Tensor:
    r"""``mean_i(w_i v_i)``; values and weights (n,)."""
    return (weights * values).mean()


def carl(log_r_hat: Tensor, y: Tensor, weights: Tensor) -> Tensor:
    r"""CARL: cross-entropy of the classifier ŝ = σ(f) against the labels.

    .. math:: ℓ = -\,y \log σ(f) - (1 - y) \log σ(-f)

    Its minimiser is s(x) = p(x|θ) / (p(x|θ) + p(x|θ_ref)), so f → log r(x | θ, θ_ref).

    Arguments:
        log_r_hat: f, (n,).  y: labels, (n,).  weights: (n,).

    References:
        K. Cranmer, J. Pavez, G. Louppe, "Approximating likelihood ratios with calibrated discriminative
        classifiers", arXiv:1506.02169.
    """
    return weighted_mean(F.binary_cross_entropy_with_logits(log_r_hat, y, reduction="none"), weights)


def rolr(log_r_hat: Tensor, y: Tensor, log_r_xz: Tensor, weights: Tensor, clip: float = LOG_R_CLIP) -> Tensor:
    r"""ROLR: regression of the ratio on the joint ratio.

    .. math:: ℓ = y\,\big(e^{-f} - r(x,z)^{-1}\big)^2 + (1 - y)\,\big(e^{f} - r(x,z)\big)^2

    Events drawn at θ_ref regress r, events drawn at θ regress 1/r; both conditional expectations are the
    marginal r(x)^{±1}, and each has mean 1 under its own sampling distribution. Targets are clipped at
    |log r(x,z)| ≤ ``clip``.

    References:
        J. Brehmer, K. Cranmer, G. Louppe, J. Pavez, "Constraining Effective Field Theories with Machine
        Learning", PRL 121 (2018) 111801, arXiv:1805.00013; "A Guide to Constraining EFTs with ML",
        PRD 98 (2018) 052004, arXiv:1805.00020.
    """
    target = log_r_xz.clamp(-clip, clip)
    f = log_r_hat.clamp(-_F_CLAMP, _F_CLAMP)
    inverse = (torch.exp(-f) - torch.exp(-target)) ** 2
    direct = (torch.exp(f) - torch.exp(target)) ** 2
    return weighted_mean(y * inverse + (1 - y) * direct, weights)


def alice(log_r_hat: Tensor, log_r_xz: Tensor, weights: Tensor) -> Tensor:
    r"""ALICE: cross-entropy against the joint-ratio-implied class probability instead of the label.

    .. math:: ℓ = -\,s(x,z) \log σ(f) - (1 - s(x,z)) \log σ(-f), \qquad s(x,z) = σ(\log r(x,z))

    Lower variance than CARL for the same minimiser, because the label noise is replaced by its
    conditional expectation given z.

    References:
        M. Stoye, J. Brehmer, G. Louppe, J. Pavez, K. Cranmer, "Likelihood-free inference with an improved
        cross-entropy estimator", arXiv:1808.00973.
    """
    return weighted_mean(F.binary_cross_entropy_with_logits(log_r_hat, torch.sigmoid(log_r_xz), reduction="none"), weights)


def score_mse(t_hat: Tensor, t_xz: Tensor, mask: Tensor, weights: Tensor, scale: Tensor | None = None) -> Tensor:
    r"""Score regression: squared error between the model's score and the joint score.

    .. math:: ℓ = m \sum_k s_k \big(\hat t_k(x \mid θ) - t_k(x, z \mid θ)\big)^2

    with m = 1 only for events drawn at the θ the score is taken at (there, E[t(x,z|θ) | x] = t(x|θ)), and
    per-component scales s_k (default 1; the estimators use 1/⟨t_k²⟩ so that α weighs a dimensionless term).

    Arguments:
        t_hat, t_xz: (n, p).  mask: (n,) in {0, 1}.  weights: (n,).  scale: (p,) or None.

    References:
        J. Brehmer, G. Louppe, J. Pavez, K. Cranmer, "Mining gold from implicit models to improve
        likelihood-free inference", PNAS 117 (2020) 5242, arXiv:1805.12244.
    """
    sq = (t_hat - t_xz) ** 2
    if scale is not None:
        sq = sq * scale
    return weighted_mean(mask * sq.sum(dim=1), weights)


def score_scale(t_xz: Tensor, y: Tensor, weights: Tensor) -> Tensor:
    r"""s_k = 1 / ⟨t_k²⟩ over the rows drawn at θ (y = 1), weighted: the per-component scales of :func:`score_mse`, so
    that α weighs a dimensionless term whatever the units of θ (TeV⁻² coefficients have joint scores of O(10–100)).
    t_xz (n, p), y (n,), weights (n,) → (p,); 1 where a component is always 0."""
    drawn = y > 0.5
    w, t = weights[drawn], t_xz[drawn]
    mean_sq = (w[:, None] * t**2).sum(0) / w.sum().clamp_min(1e-12)
    return torch.where(mean_sq > 0, 1.0 / mean_sq, torch.ones_like(mean_sq))


def sally(t_hat: Tensor, t_xz: Tensor, weights: Tensor) -> Tensor:
    r"""SALLY: the local score at θ_ref regressed on the joint score, ℓ = ‖t̂(x) − t(x, z | θ_ref)‖².

    The minimiser t̂(x) = t(x | θ_ref) is the locally sufficient statistic near θ_ref.

    References:
        Brehmer, Cranmer, Louppe, Pavez, arXiv:1805.00013 and arXiv:1805.00020.
    """
    return score_mse(t_hat, t_xz, torch.ones_like(weights), weights)


def revert(g: Tensor, y: Tensor, weights: Tensor) -> Tensor:
    r"""REVERT: a classification loss whose minimiser is a *signed* density ratio.

    With the classifier s = σ(−g) of the network output g,

    .. math:: ℓ = y\, s - (1 - y)\,\big(\log s + \log(1 - s)\big)
              = y\, σ(-g) + (1 - y)\,\big(\mathrm{softplus}(g) + \mathrm{softplus}(-g)\big).

    The pointwise risk p₁ σ(−g) + p₀ [softplus(g) + softplus(−g)] is stationary where
    p₁/p₀ = (1 − 2s)/(s(1 − s)) = 2 sinh g: a bijection of the real line (s = ½ ↔ r = 0), so r̂ = 2 sinh ĝ takes
    either sign, and the risk is convex in s wherever the denominator density p₀ ≥ 0 — whatever the sign of p₁.
    Binary cross-entropy's odds s/(1 − s) cannot go negative, and its risk is unbounded below where p₁ < 0.

    Arguments:
        g: network output, (n,).  y: 1 for the numerator (target) sample, 0 for the denominator, (n,).
        weights: signed event weights, (n,).

    References:
        M. Drnevich, S. Jiggins, K. Cranmer, "Quasiprobabilistic density ratio estimation with a reverse engineered
        classification loss function", arXiv:2512.19913.
    """
    per_event = y * torch.sigmoid(-g) + (1 - y) * (F.softplus(g) + F.softplus(-g))
    return weighted_mean(per_event, weights)


#: the θ-parametrised REVERT's offset: the anchored network output f = g(x, θ) − g(x, θ_ref) enters as h = H₀ + f
#: with 2 sinh H₀ = 1, so that r̂(x | θ_ref) = 1 exactly, as for every other ratio method
REVERT_OFFSET = math.asinh(0.5)
#: the smallest h whose log 2 sinh h is taken: where r̂ ≤ 0 the log ratio is log 2 sinh(1e-6) ≈ −13.1
SIGNED_FLOOR = 1e-6


def signed_ratio(f: Tensor) -> Tensor:
    r"""The signed ratio r̂ = 2 sinh(H₀ + f) of the θ-parametrised REVERT's anchored output f (n,)."""
    return 2 * torch.sinh(REVERT_OFFSET + f.clamp(-_F_CLAMP, _F_CLAMP))


def signed_log_ratio(f: Tensor) -> Tensor:
    r"""log r̂ = log 2 sinh(H₀ + f) where r̂ > 0; floored at log 2 sinh(10⁻⁶) where the learned ratio is not
    positive (a physical likelihood is; a negative r̂ at an observed event says the estimate failed there)."""
    h = (REVERT_OFFSET + f.clamp(max=_F_CLAMP)).clamp(min=SIGNED_FLOOR)
    at_reference = torch.log(2 * torch.sinh(torch.full_like(f, REVERT_OFFSET)))  # log 1 as rounded: exactly 0 at f = 0
    return torch.log(2 * torch.sinh(h)) - at_reference


def floored_log(r: Tensor) -> Tensor:
    """log r where r > 0, log 2 sinh(10⁻⁶) ≈ log 2·10⁻⁶ where it is not: the floor of the signed methods whose output
    is r̂ itself (the signed mixture model)."""
    return torch.log(r.clamp(min=2 * SIGNED_FLOOR))


#: what a loss can need from the training data: labels y, the joint log ratio, the joint score, and events
#: from both θ and θ_ref (y = 0 and y = 1)
NEEDS = ("y", "log_r_xz", "t_xz", "both_classes")


def quadratic_form_mse(predicted: Tensor, target: Tensor, weights: Tensor, scale: Tensor) -> Tensor:
    r"""Morphing-aware regression: squared error of the entries of a quadratic form, each in units of its spread.

    .. math:: ℓ = \sum_e s_e \big(A_e(x) - T_e(z)\big)^2

    The minimiser is A(x) = E[T(z) | x]: the conditional expectation of the event's weight polynomial, which
    makes the detector-level ratio exact (:mod:`hepsbi.estimators.morphing`).

    Arguments:
        predicted, target: entries (n, E).  weights: (n,).  scale: s_e (E,), e.g. 1/Var(T_e).

    References:
        Chen, Glioti, Panico, Wulzer, arXiv:2007.10356; Chatterjee et al., arXiv:2107.10859.
    """
    return weighted_mean(((predicted - target) ** 2 * scale).sum(dim=1), weights)


@dataclass(frozen=True)
class RatioLoss:
    """A ratio-estimation method: its ratio term, what it needs from the data (:data:`NEEDS`), its reference.
    A method that needs ``t_xz`` adds α times the score term (:func:`score_mse`)."""

    name: str
    ratio_term: Callable[..., Tensor]  # (log_r_hat, y, log_r_xz, w, clip) -> scalar
    needs: frozenset[str]
    reference: str
    summary: str
    #: its network output is a signed ratio r̂ = 2 sinh(H₀ + f) (:func:`signed_ratio`), not log r̂ = f
    signed: bool = False

    @property
    def uses_score(self) -> bool:
        return "t_xz" in self.needs


def _loss(name: str, term: Callable[..., Tensor], needs: str, reference: str, summary: str,
          signed: bool = False) -> RatioLoss:
    unknown = set(needs.split()) - set(NEEDS)
    if unknown:  # a misspelt need would silently never be met
        raise ValueError(f"loss {name!r} needs {sorted(unknown)}, which are not among {NEEDS}")
    return RatioLoss(name, term, frozenset(needs.split()), reference, summary, signed)


RATIO_LOSSES: dict[str, RatioLoss] = {loss.name: loss for loss in (
    _loss("carl", lambda f, y, lr, w, clip: carl(f, y, w), "y both_classes", "arXiv:1506.02169",
          "classifier between θ and θ_ref (cross-entropy on labels)"),
    _loss("rolr", rolr, "y log_r_xz both_classes", "arXiv:1805.00013",
          "regression of r and 1/r on the joint ratio"),
    _loss("alice", lambda f, y, lr, w, clip: alice(f, lr, w), "log_r_xz", "arXiv:1808.00973",
          "cross-entropy against the joint-ratio class probability"),
    _loss("cascal", lambda f, y, lr, w, clip: carl(f, y, w), "y t_xz both_classes", "arXiv:1805.12244",
          "CARL + α · joint-score regression"),
    _loss("rascal", rolr, "y log_r_xz t_xz both_classes", "arXiv:1805.00013",
          "ROLR + α · joint-score regression"),
    _loss("alices", lambda f, y, lr, w, clip: alice(f, lr, w), "log_r_xz t_xz", "arXiv:1808.00973",
          "ALICE + α · joint-score regression"),
    _loss("revert", lambda f, y, lr, w, clip: revert(REVERT_OFFSET + f, y, w), "y both_classes", "arXiv:2512.19913",
          "signed ratio 2 sinh(h) between θ and θ_ref (REVERT loss): samples with negative weights", signed=True),
)}


def ratio_loss(
    method: str,
    log_r_hat: Tensor,
    t_hat: Tensor | None,
    y: Tensor,
    log_r_xz: Tensor,
    t_xz: Tensor,
    weights: Tensor,
    alpha: float,
    clip: float = LOG_R_CLIP,
    score_scale: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    r"""The loss of ``method``: ratio term + α · score term for the score-augmented methods (``clip``
    applies to ROLR and RASCAL; ``score_scale`` (p,) weighs the score components, see :func:`score_mse`).

    Returns the total and its parts ``{"ratio": …, "score": …}`` (detached) for monitoring.
    """
    spec = RATIO_LOSSES[method]
    ratio_part = spec.ratio_term(log_r_hat, y, log_r_xz, weights, clip)
    parts = {"ratio": ratio_part.detach()}
    if not spec.uses_score:
        return ratio_part, parts
    if t_hat is None:
        raise ValueError(f"method {method!r} needs the model score t_hat")
    score_part = score_mse(t_hat, t_xz, y, weights, score_scale)
    parts["score"] = score_part.detach()
    return ratio_part + alpha * score_part, parts
