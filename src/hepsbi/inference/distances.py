r"""Distances between weighted samples, negative weights included.

The sliced Wasserstein-1 distance averages, over random directions u on the unit sphere, the 1-D Wasserstein-1
distance of the projected samples, W₁(a, b) = ∫ |F_a(t) − F_b(t)| dt with F the weighted empirical CDFs
(Bonneel, Rabin, Peyré, Pfister, J. Math. Imaging Vis. 51 (2015) 22). It needs non-negative measures. For signed
ones — a reweighted NLO sample against its target — the extended distance moves every negative part to the other
side, where it adds instead of subtracting (Drnevich, Jiggins, Cranmer, arXiv:2512.19913):

.. math:: \text{SW}_\pm(s, t) = \text{SW}_1\big(s^+ + t^-,\; t^+ + s^-\big),

with s = s⁺ − s⁻ and t = t⁺ − t⁻ each normalised to unit total weight first (and both sides again after). Since
s = t ⇔ s⁺ + t⁻ = t⁺ + s⁻, it vanishes exactly when the signed measures agree.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["extended_sliced_wasserstein", "sliced_wasserstein", "wasserstein_1d"]


def wasserstein_1d(a: Tensor, wa: Tensor, b: Tensor, wb: Tensor) -> Tensor:
    r"""W₁ between weighted 1-D samples, batched over a leading axis: a (P, n), b (P, m) with non-negative weights
    wa (n,), wb (m,), each normalised to sum 1 here: ∫ |F_a − F_b| dt, exact for empirical measures; (P,)."""
    wa, wb = wa / wa.sum(), wb / wb.sum()
    values = torch.cat([a, b], dim=-1)
    mass = torch.cat([wa, -wb]).expand_as(values)
    order = torch.argsort(values, dim=-1)
    values, mass = torch.gather(values, -1, order), torch.gather(mass, -1, order)
    difference = torch.cumsum(mass, dim=-1)[..., :-1]  # F_a − F_b between consecutive points
    return (difference.abs() * torch.diff(values, dim=-1)).sum(dim=-1)


def sliced_wasserstein(a: Tensor, wa: Tensor, b: Tensor, wb: Tensor, projections: int = 50, seed: int = 0,
                       chunk: int = 8) -> float:
    r"""SW₁ between weighted samples a (n, d), b (m, d) with non-negative weights (n,), (m,): the mean over
    ``projections`` directions drawn uniformly on the sphere (seeded) of W₁ of the projections; ``chunk`` directions
    at a time bound the memory (chunk · (n + m) sorted values)."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    wa, wb = torch.as_tensor(wa, dtype=torch.float64), torch.as_tensor(wb, dtype=torch.float64)
    if bool((wa < 0).any()) or bool((wb < 0).any()):
        raise ValueError("sliced_wasserstein needs non-negative weights: use extended_sliced_wasserstein for signed ones")
    directions = torch.randn(projections, a.shape[1], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    directions = directions / directions.norm(dim=1, keepdim=True)
    total = sum(float(wasserstein_1d(u @ a.T, wa, u @ b.T, wb).sum()) for u in directions.split(chunk))
    return total / projections


def extended_sliced_wasserstein(source: tuple[Tensor, Tensor], target: tuple[Tensor, Tensor], projections: int = 50,
                                seed: int = 0) -> float:
    """SW± between two signed weighted samples, each given as (x (n, d), w (n,)) (module docstring)."""
    (xs, ws), (xt, wt) = ((torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(w, dtype=torch.float64))
                          for x, w in (source, target))
    for name, w in (("source", ws), ("target", wt)):
        if not float(w.sum()) > 0:
            raise ValueError(f"the {name} weights must have a positive sum (got {float(w.sum()):g})")
    ws, wt = ws / ws.sum(), wt / wt.sum()
    left_x = torch.cat([xs[ws >= 0], xt[wt < 0]])
    left_w = torch.cat([ws[ws >= 0], -wt[wt < 0]])
    right_x = torch.cat([xt[wt >= 0], xs[ws < 0]])
    right_w = torch.cat([wt[wt >= 0], -ws[ws < 0]])
    return sliced_wasserstein(left_x, left_w, right_x, right_w, projections, seed)
