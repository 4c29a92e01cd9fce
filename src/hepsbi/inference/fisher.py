r"""Fisher information: how much an analysis can learn about θ, before any fit.

For the extended likelihood with differential rate f(x | θ) = ν(θ) p(x | θ), the expected information is

.. math:: I_{ab}(θ) = \int f\, ∂_a \log f\, ∂_b \log f\, dx \approx \sum_j ν_j\, u_{ja} u_{jb},
          \qquad u_j = ∇_θ \log ν(θ) + ∇_θ \log p(x_j \mid θ),

over Monte Carlo events j carrying ν_j expected events at θ. The per-event score ∇ log p is the parton-level
joint score for the *truth* (the ceiling, as in MadMiner's "truth" information), the score of a learned,
normalised likelihood ratio or SALLY's score estimate for the *ML* information, and absent for the
*rate-only* information. A histogram with expected counts ν_b(θ) carries Σ_b ∂ν_b ∂ν_b^T / ν_b.

The covariance of an efficient estimator is I⁻¹ (Cramér–Rao); with nuisance parameters the information on
the parameters of interest is the Schur complement I_θθ − I_θα I_αα⁻¹ I_αθ (:func:`profiled_information`),
and for an :class:`~hepsbi.inference.unbinned.UnbinnedModel` the full matrix, constraints included, is the
Hessian of its NLL on its own Asimov dataset (:func:`model_information`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from hepsbi.errors import InferenceError
from hepsbi.inference.profile import hessian
from hepsbi.inference.unbinned import UnbinnedModel

__all__ = [
    "binned_information",
    "information_from_scores",
    "information_summary",
    "kept_information",
    "kept_summary",
    "model_information",
    "per_event_scores",
    "profiled_information",
    "rate_information",
    "rate_score",
]


def per_event_scores(log_density: Callable[[Tensor], Tensor], theta: Tensor) -> Tensor:
    """∇_θ of a per-event function θ (p,) → (n,) (e.g. a log-likelihood ratio on fixed events): (n, p), by
    forward-mode differentiation (p passes, whatever n)."""
    theta = torch.as_tensor(theta, dtype=torch.float64)
    with torch.enable_grad():
        jac = torch.autograd.functional.jacobian(lambda t: log_density(t).to(torch.float64), theta,
                                                 vectorize=True, strategy="forward-mode")
    return jac.reshape(-1, theta.numel()).detach()


def _central_differences(fn: Callable[[Tensor], object], theta: Tensor, step: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """fn(θ) as an array (B,) and its Jacobian (B, p) by central differences — exact, up to rounding, for a
    function quadratic in θ (morphing)."""
    point = np.asarray(torch.as_tensor(theta, dtype=torch.float64), dtype=float)
    # float64 throughout: torch.as_tensor of a Python float would make a float32 tensor, whose rounding of a
    # yield of ~1e5 events swamps its differences over the step
    at = lambda t: np.atleast_1d(np.asarray(torch.as_tensor(fn(torch.from_numpy(t)), dtype=torch.float64), dtype=float))  # noqa: E731
    jac = np.stack([(at(point + step * e) - at(point - step * e)) / (2 * step) for e in np.eye(len(point))], axis=-1)
    return at(point), jac


def rate_score(expected: Callable[[Tensor], float | Tensor], theta: Tensor) -> np.ndarray:
    """∇_θ log ν(θ) by central differences (exact for a quadratic ν, as with morphing, up to rounding): (p,)."""
    nu, jac = _central_differences(expected, theta)
    return jac[0] / nu[0]


def information_from_scores(scores: Tensor | np.ndarray, expected: Tensor | np.ndarray,
                            rate: np.ndarray | None = None) -> np.ndarray:
    """Σ_j ν_j u_j u_jᵀ with u_j = ``rate`` + ``scores``_j: scores (n, p), expected ν_j (n,), rate ∇ log ν (p,).
    With ``rate`` the per-event scores must be those of a normalised density (E[score] = 0)."""
    s = np.asarray(scores, dtype=float)
    w = np.asarray(expected, dtype=float)
    if s.ndim != 2 or w.shape != (s.shape[0],):
        raise InferenceError(f"scores (n, p) and expected events (n,) do not match: {s.shape}, {w.shape}")
    if rate is not None:
        s = s + np.asarray(rate, dtype=float)[None, :]
    return (w[:, None] * s).T @ s


def kept_information(statistic: Tensor | np.ndarray, joint_scores: Tensor | np.ndarray, expected: Tensor | np.ndarray,
                     rate: np.ndarray | None = None) -> np.ndarray:
    r"""The information a per-event statistic s(x) keeps, estimated without trusting it to be a score:

    .. math:: I_s = C_{ts} C_{ss}^{-1} C_{st}, \qquad C_{ab} = \sum_j ν_j a_j b_jᵀ,

    with s = (1, s(x)) (the event count and the statistic summed over events) and t = ``rate`` + the joint
    (parton-level) score t(x, z | θ), whose expectation given x is the true score. It is the information of the
    best linear function of the count and the summed statistic — a lower bound on what x carries, equal to it
    when s is the score, and to :func:`binned_information` when s holds bin indicators. Σ_j ν_j ŝ_j ŝ_jᵀ
    (:func:`information_from_scores`, what a learned score *claims*) is no bound: its noise adds to it. Evaluate it
    on events the statistic was not trained on (a statistic fitted to the noise of t on the same events inflates
    C_ts).

    Arguments:
        statistic: s(x_j), (n, k).  joint_scores: t(x_j, z_j | θ), (n, p).  expected: ν_j, (n,).  rate: ∇ log ν (p,).

    Returns:
        (p, p).

    References:
        The projection of the joint score on functions of x: Brehmer, Cranmer, Louppe, Pavez, arXiv:1805.00020
        (SALLY's score is its minimiser over all functions of x).
    """
    s = np.asarray(statistic, dtype=float)
    t = np.asarray(joint_scores, dtype=float)
    nu = np.asarray(expected, dtype=float)[:, None]
    if s.ndim != 2 or t.ndim != 2 or len(s) != len(t) or nu.shape[0] != len(s):
        raise InferenceError(f"statistic (n, k), joint scores (n, p) and expected events (n,) do not match: "
                             f"{s.shape}, {t.shape}, {nu.shape[:1]}")
    s = np.hstack([np.ones((len(s), 1)), s])
    if rate is not None:
        t = t + np.asarray(rate, dtype=float)[None, :]
    c_ts, c_ss = (nu * t).T @ s, (nu * s).T @ s
    return c_ts @ np.linalg.solve(c_ss, c_ts.T)


def rate_information(expected: Callable[[Tensor], float | Tensor], theta: Tensor) -> np.ndarray:
    """The information in the total number of events alone: ν ∇log ν ∇log νᵀ, (p, p)."""
    g = rate_score(expected, theta)
    return float(expected(torch.as_tensor(theta, dtype=torch.float64))) * np.outer(g, g)


def binned_information(counts: Callable[[Tensor], np.ndarray | Tensor], theta: Tensor) -> np.ndarray:
    """Σ_b ∂ν_b ∂ν_bᵀ / ν_b of a histogram with expected counts ``counts(θ)`` (B,), derivatives by central
    differences (exact for counts quadratic in θ); empty bins carry nothing."""
    nu, jac = _central_differences(counts, theta)
    keep = nu > 0
    return (jac[keep] / nu[keep, None]).T @ jac[keep]


def profiled_information(information: np.ndarray, n_poi: int) -> np.ndarray:
    """The information on the first ``n_poi`` parameters with the others (nuisance parameters) profiled:
    I_θθ − I_θα I_αα⁻¹ I_αθ, (n_poi, n_poi)."""
    info = np.asarray(information, dtype=float)
    a, b = info[:n_poi, :n_poi], info[:n_poi, n_poi:]
    if b.shape[1] == 0:
        return a.copy()
    return a - b @ np.linalg.solve(info[n_poi:, n_poi:], b.T)


def model_information(model: UnbinnedModel, params: Sequence[float] | Tensor) -> np.ndarray:
    """Expected information of an :class:`~hepsbi.inference.unbinned.UnbinnedModel` at (θ, α), constraints
    included: the Hessian of the NLL of its Asimov dataset at that point, (P, P) in ``model.names`` order."""
    asimov = model.asimov(params)
    return hessian(asimov.nll, torch.as_tensor(params, dtype=torch.float64).tolist())


def information_summary(information: np.ndarray, names: Sequence[str]) -> dict[str, object]:
    """A JSON-ready summary: the matrix, the Cramér–Rao errors √(I⁻¹)_aa, det I and the correlation."""
    info = np.asarray(information, dtype=float)
    try:
        cov = np.linalg.inv(info)
        errors = {n: float(np.sqrt(cov[i, i])) if cov[i, i] > 0 else None for i, n in enumerate(names)}
    except np.linalg.LinAlgError:
        errors = {n: None for n in names}
    return {"matrix": info.tolist(), "errors": errors, "determinant": float(np.linalg.det(info))}


def kept_summary(information: np.ndarray, replicas: Sequence[np.ndarray], names: Sequence[str]) -> dict[str, object]:
    """:func:`information_summary` of a kept information with statistical errors: the standard deviation over
    bootstrap ``replicas`` of each Cramér–Rao error (``errors_error``) and of det I (``determinant_error``)."""
    out = information_summary(information, names)
    parts = [information_summary(r, names) for r in replicas]
    if len(parts) > 1:
        out["errors_error"] = {n: float(np.std([p["errors"][n] for p in parts]))  # type: ignore[index]
                               if all(p["errors"][n] is not None for p in parts) else None for n in names}  # type: ignore[index]
        out["determinant_error"] = float(np.std([float(np.linalg.det(np.asarray(r, dtype=float))) for r in replicas]))
    return out
