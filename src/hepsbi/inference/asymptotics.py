r"""Test statistics for upper limits and their asymptotic distributions (Cowan, Cranmer, Gross, Vitells,
Eur. Phys. J. C 71 (2011) 1554, arXiv:1007.1727).

With λ(μ) = L(μ, \hat{\hat α}) / L(\hat μ, \hat α) the profile likelihood ratio:

* t_μ = −2 log λ(μ);
* q_μ = t_μ if \hat μ ≤ μ else 0 (one-sided, for upper limits);
* q̃_μ as q_μ but with \hat μ restricted to ≥ 0: if \hat μ < 0 the denominator is taken at μ = 0.

Their asymptotic distributions depend on σ of \hat μ, obtained from the Asimov dataset of the background-only
hypothesis: q_{μ,A} = μ² / σ². From the observed q and q_A follow p_{s+b}, p_b and CLs = p_{s+b} / (1 − p_b),
and the expected band from q_A alone.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from hepsbi.errors import InferenceError

__all__ = ["likelihood_test_statistic", "asymptotic_cls", "N_SIGMA"]

#: Shifts of the expected band, in the order pyhf reports it (most to least excluding: "−2σ" … "+2σ").
N_SIGMA = (2.0, 1.0, 0.0, -1.0, -2.0)


def likelihood_test_statistic(kind: str, nll_mu: float, nll_hat: float, mu: float, mu_hat: float, nll_zero: float | None = None) -> float:
    """t_μ, q_μ or q̃_μ from fitted negative log-likelihoods.

    Arguments:
        kind: ``"t"``, ``"q"`` or ``"qtilde"``.
        nll_mu: NLL at μ with the nuisance parameters profiled.  nll_hat: NLL at the global minimum (μ̂ free).
        mu, mu_hat: tested value and best fit.  nll_zero: profiled NLL at μ = 0 (``qtilde`` with μ̂ < 0).
    """
    if kind == "t":
        return max(0.0, 2.0 * (nll_mu - nll_hat))
    if kind == "q":
        return 0.0 if mu_hat > mu else max(0.0, 2.0 * (nll_mu - nll_hat))
    if kind == "qtilde":
        if mu_hat > mu:
            return 0.0
        if mu_hat < 0:
            if nll_zero is None:
                raise InferenceError("q̃_μ with μ̂ < 0 needs the profiled NLL at μ = 0")
            return max(0.0, 2.0 * (nll_mu - nll_zero))
        return max(0.0, 2.0 * (nll_mu - nll_hat))
    raise InferenceError(f"test statistic must be 't', 'q' or 'qtilde' (got {kind!r})")


def _p_values(q: float, q_asimov: float, kind: str) -> tuple[float, float]:
    """(p_{s+b}, p_b) for an observed q given q_A."""
    sq, sqa = np.sqrt(max(q, 0.0)), np.sqrt(max(q_asimov, 1e-300))
    if kind == "qtilde" and q > q_asimov:
        z_sb = (q + q_asimov) / (2.0 * sqa)
        z_b = (q - q_asimov) / (2.0 * sqa)
    else:
        z_sb, z_b = sq, sq - sqa
    p_sb = float(stats.norm.sf(z_sb))
    p_b = float(stats.norm.cdf(z_b))
    return p_sb, p_b


def asymptotic_cls(q_obs: float, q_asimov: float, kind: str = "qtilde") -> tuple[float, list[float]]:
    """Observed CLs and the expected band (−2σ … +2σ) from q and q_A (``kind`` ``"q"`` or ``"qtilde"``)."""
    if kind not in ("q", "qtilde"):
        raise InferenceError(f"CLs needs an upper-limit test statistic, 'q' or 'qtilde' (got {kind!r})")
    if q_asimov <= 0:
        raise InferenceError(f"q_A must be positive (got {q_asimov}): the Asimov dataset has no sensitivity")
    p_sb, p_b = _p_values(q_obs, q_asimov, kind)
    cls_obs = p_sb / (1.0 - p_b) if p_b < 1 else 1.0
    # Background-only experiments n σ above the median have Z = √q_A + n in the asymptotic Gaussian variable
    # (which may be negative): p_{s+b} = Φ̄(√q_A + n), 1 − p_b = Φ̄(n)... ordered from the most excluding.
    sqa = np.sqrt(q_asimov)
    expected = [float(stats.norm.sf(sqa + n) / stats.norm.sf(n)) for n in N_SIGMA]
    return float(cls_obs), expected
