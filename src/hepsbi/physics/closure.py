r"""Closure of the reweighting against Pythia's own contact-interaction process.

An SM sample (``WeakSingleBoson:ffbar2gmZ``) reweighted to θ with hepsbi's matrix element must reproduce
Pythia run directly with ``ContactInteractions:QCffbar2<l><l>bar = on`` at the same (Λ, η): cross section
and shapes (m_ℓℓ, cos θ*). Both are parton level, so the comparison tests the matrix element, the
conventions (c = 4πη/Λ²) and the morphing, not the detector.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from hepsbi.physics import kinematics as kin
from hepsbi.physics.drell_yan import DrellYanContact
from hepsbi.physics.matrix_elements import eta_lambda_to_theta
from hepsbi.physics.pythia import PythiaRun, hard_leptons

__all__ = ["ClosureResult", "closure"]

_PROCESS = {11: "QCffbar2eebar", 13: "QCffbar2mumubar", 15: "QCffbar2tautaubar"}


@dataclass
class ClosureResult:
    """Reweighted vs direct σ (pb) with statistical errors, and χ² tests of the shapes."""

    sigma_reweighted: float
    sigma_reweighted_err: float
    sigma_direct: float
    sigma_direct_err: float
    relative_difference: float
    pull: float
    chi2_m_ll: float
    pvalue_m_ll: float
    chi2_cos_theta: float
    pvalue_cos_theta: float
    ndf: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _histogram_chi2(a: np.ndarray, wa: np.ndarray, b: np.ndarray, wb: np.ndarray, edges: np.ndarray) -> tuple[float, int]:
    """χ² between two weighted, unit-normalised histograms (Gagunashvili's weighted-weighted test, simplified
    to independent bins with variances Σw²)."""
    ha, _ = np.histogram(a, edges, weights=wa)
    hb, _ = np.histogram(b, edges, weights=wb)
    va, _ = np.histogram(a, edges, weights=wa**2)
    vb, _ = np.histogram(b, edges, weights=wb**2)
    na, nb = ha.sum(), hb.sum()
    diff = ha / na - hb / nb
    var = va / na**2 + vb / nb**2
    keep = var > 0
    return float((diff[keep] ** 2 / var[keep]).sum()), int(keep.sum() - 1)


def closure(
    lambda_tev: float,
    eta: dict[str, int],
    n_events: int = 100_000,
    seed: int = 11,
    m_min: float = 200.0,
    n_slices: int = 4,
    lepton: str = "mu",
    energy: float = 13000.0,
) -> ClosureResult:
    """Compare SM reweighted to (Λ, η) with Pythia's contact-interaction process generated directly.

    Both samples are generated in the same m̂ slices (``DrellYanContact.mass_slices``) so that the tail,
    where the contact terms matter most, is populated in both.

    Arguments:
        lambda_tev: Λ in TeV.
        eta: e.g. ``{"LL": -1}``; keys among LL, LR, RL, RR; values −1, 0, +1 (Pythia accepts only these).
        n_events: events of each sample, spread over the slices.
        seed: Pythia seed of the SM sample (slice i: seed + i); the direct sample uses seed + 1000 + i.
    """
    import torch

    sim = DrellYanContact(lepton=lepton, m_min=m_min, energy=energy, n_slices=n_slices)
    theta = eta_lambda_to_theta(lambda_tev, **{f"eta_{k}": v for k, v in eta.items()})
    process = [f"ContactInteractions:{_PROCESS[sim.run.lepton_id]} = on", f"ContactInteractions:Lambda = {1000 * lambda_tev}"]
    process += [f"ContactInteractions:eta{k} = {int(v)}" for k, v in eta.items()]
    direct_run = PythiaRun(lepton=lepton, energy=energy, process=process)

    def shapes(latent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lm, lp = hard_leptons(latent)
        return kin.mass(lm + lp), kin.cos_theta_star(lm, lp, latent[:, 2], latent[:, 3], latent[:, 0])

    rw: dict[str, list[np.ndarray]] = {"m": [], "c": [], "w": []}
    dr: dict[str, list[np.ndarray]] = {"m": [], "c": [], "w": []}
    sigma_rw = sigma_rw_var = sigma_d = sigma_d_var = 0.0
    for i, mass_slice in enumerate(sim.mass_slices(n_events)):
        sm = sim.run.generate(mass_slice, seed=seed + i)
        z = sim.latent_from_parton_level(sm.latent)
        r = sim.weight_ratio(torch.from_numpy(z), theta).numpy()
        w = sm.weights * r
        s_i = float(w.sum())
        # σ_i = σ_SM,i · ⟨r⟩_i: relative errors of Pythia's σ_SM,i and of the mean add in quadrature.
        rel = np.hypot(sm.sigma_err_pb / sm.sigma_pb, np.std(r, ddof=1) / np.sqrt(len(r)) / np.mean(r))
        sigma_rw, sigma_rw_var = sigma_rw + s_i, sigma_rw_var + (s_i * rel) ** 2
        m, c = shapes(sm.latent)
        for key, value in (("m", m), ("c", c), ("w", w)):
            rw[key].append(value)

        direct = direct_run.generate(mass_slice, seed=seed + 1000 + i)
        sigma_d, sigma_d_var = sigma_d + direct.sigma_pb, sigma_d_var + direct.sigma_err_pb**2
        m, c = shapes(direct.latent)
        for key, value in (("m", m), ("c", c), ("w", direct.weights)):
            dr[key].append(value)

    cat = {k: np.concatenate(v) for k, v in rw.items()}
    dcat = {k: np.concatenate(v) for k, v in dr.items()}
    m_edges = np.append(np.geomspace(m_min, 3000.0, 16), energy)
    chi2_m, ndf_m = _histogram_chi2(cat["m"], cat["w"], dcat["m"], dcat["w"], m_edges)
    chi2_c, ndf_c = _histogram_chi2(cat["c"], cat["w"], dcat["c"], dcat["w"], np.linspace(-1, 1, 17))
    diff = sigma_rw - sigma_d
    err_rw, err_d = float(np.sqrt(sigma_rw_var)), float(np.sqrt(sigma_d_var))
    return ClosureResult(
        sigma_reweighted=sigma_rw,
        sigma_reweighted_err=err_rw,
        sigma_direct=sigma_d,
        sigma_direct_err=err_d,
        relative_difference=diff / sigma_d,
        pull=diff / float(np.hypot(err_rw, err_d)),
        chi2_m_ll=chi2_m,
        pvalue_m_ll=float(stats.chi2.sf(chi2_m, ndf_m)),
        chi2_cos_theta=chi2_c,
        pvalue_cos_theta=float(stats.chi2.sf(chi2_c, ndf_c)),
        ndf=ndf_m,
    )
