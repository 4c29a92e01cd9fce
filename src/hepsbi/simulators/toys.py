r"""Toy simulators with exact likelihoods, for validating every method against the truth.

Each toy implements the :class:`~hepsbi.simulators.protocol.Simulator` protocol and, in addition, the exact
marginal ``log_prob(x, θ)``. They are small on purpose: their likelihoods are closed-form or computed by
exact dynamic programming, never by histogramming.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from hepsbi.simulators.gold import as_rows
from hepsbi.space import Parameter, ParameterSpace

__all__ = ["GaussianLatent", "GaltonBoard", "MultiParameterGaussian", "TwoMoons"]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _normal_log_prob(value: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    return -0.5 * ((value - mean) / std) ** 2 - torch.log(std) - _LOG_SQRT_2PI


def _require(condition: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``condition`` (the registry names the simulator and its options)."""
    if not condition:
        raise ValueError(message)


class GaussianLatent:
    r"""z ~ N(θ + μ0, σ_z), x ~ N(z, σ_x): the simplest model with a latent variable.

    The marginal is closed-form, p(x | θ) = N(x; θ + μ0, (σ_z² + σ_x²)^{1/2}), and the joint score is
    t(x, z | θ) = (z − θ − μ0) / σ_z².

    Arguments:
        mu0: offset μ0 of the latent mean.
        sigma_z, sigma_x: latent and smearing widths.
        low, high: range of θ (reference θ_ref = 0 must lie inside).
    """

    observable_names = ("x",)

    def __init__(self, mu0: float = 0.0, sigma_z: float = 1.0, sigma_x: float = 0.5, low: float = -1.0, high: float = 1.0):
        _require(math.isfinite(mu0), f"mu0 must be finite (got {mu0})")
        _require(0 < sigma_z < math.inf and 0 < sigma_x < math.inf,
                 f"sigma_z and sigma_x must be positive and finite (got {sigma_z}, {sigma_x})")
        self.mu0, self.sigma_z, self.sigma_x = float(mu0), float(sigma_z), float(sigma_x)
        self.space = ParameterSpace([Parameter("theta", low, high, reference=0.0)])

    def sample(self, theta: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """θ (n, 1) → x (n, 1), z (n, 1)."""
        theta = torch.as_tensor(theta, dtype=torch.float64).reshape(-1, 1)
        n = theta.shape[0]
        z = theta + self.mu0 + self.sigma_z * torch.randn(n, 1, generator=generator, dtype=torch.float64)
        x = z + self.sigma_x * torch.randn(n, 1, generator=generator, dtype=torch.float64)
        return x, z

    def joint_log_prob(self, z: Tensor, theta: Tensor) -> Tensor:
        """log N(z; θ + μ0, σ_z), (n,)."""
        theta = as_rows(theta, z.shape[0])
        return _normal_log_prob(z[:, 0], theta[:, 0] + self.mu0, torch.tensor(self.sigma_z, dtype=z.dtype))

    def log_prob(self, x: Tensor, theta: Tensor) -> Tensor:
        """Exact log p(x | θ), (n,)."""
        theta = as_rows(theta, x.shape[0])
        std = torch.tensor(math.hypot(self.sigma_z, self.sigma_x), dtype=torch.float64)
        return _normal_log_prob(torch.as_tensor(x, dtype=torch.float64)[:, 0], theta[:, 0] + self.mu0, std)


class GaltonBoard:
    r"""The generalised Galton board of Brehmer, Cranmer, Louppe, Pavez (arXiv:1805.12244).

    A ball falls through ``rows`` staggered rows of ``nails`` nails, starting above the central nail. In
    row r (relative height ρ = r / (rows − 1)), at nail position h (relative ν = 2h / (nails − 1) − 1 ∈
    [−1, 1]), it moves right with probability

    .. math:: p_\text{right}(θ; ρ, ν) = \tfrac12 (1 - \sin πρ) + \sin(πρ)\, σ(\text{strength}\;θ\;ν),

    the nail function of the paper (strength = 10 there). For θ > 0 the nails push the ball away from the
    centre, for θ < 0 towards it, most strongly in the middle rows. After k right moves in r rows the ball
    sits at h = (nails − 1)/2 + (2k − r)/2; with nails > rows it never reaches a wall.

    The marginal of the final slot x = k_rows is intractable in closed form but exact by dynamic programming
    over (row, k), which is what :meth:`slot_log_probs` does.

    Latent z: the ``rows`` moves (1 = right), shape (n, rows). Observable x: the final slot, (n, 1).
    """

    observable_names = ("slot",)

    def __init__(self, rows: int = 20, nails: int = 31, strength: float = 10.0, low: float = -0.5, high: float = 0.5):
        _require(isinstance(rows, int) and isinstance(nails, int) and 2 <= rows <= 1000,
                 f"rows must be an integer in [2, 1000] and nails an integer (got {rows!r}, {nails!r})")
        _require(rows < nails <= 10_000, f"GaltonBoard needs rows < nails <= 10000 so that the ball never hits a wall "
                 f"(got nails {nails}, rows {rows})")
        _require(0 <= strength < math.inf, f"strength must be finite and >= 0 (got {strength})")
        self.rows, self.nails, self.strength = int(rows), int(nails), float(strength)
        self.space = ParameterSpace([Parameter("theta", low, high, reference=0.0)])

    def _p_right(self, theta: Tensor, row: int, k: Tensor) -> Tensor:
        """Probability of a right move in row ``row`` after ``k`` right moves; theta (n,), k (n,) or (n, m)."""
        nu = (2 * k - row) / (self.nails - 1)
        if k.dim() == 2:
            theta = theta.unsqueeze(1)
        bend = math.sin(math.pi * row / (self.rows - 1))
        return 0.5 * (1 - bend) + bend * torch.sigmoid(self.strength * theta * nu)

    def sample(self, theta: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """θ (n, 1) → x (n, 1) final slot, z (n, rows) moves."""
        theta = torch.as_tensor(theta, dtype=torch.float64).reshape(-1)
        n = theta.shape[0]
        k = torch.zeros(n, dtype=torch.float64)
        uniforms = torch.rand(n, self.rows, generator=generator, dtype=torch.float64)
        moves = torch.empty(n, self.rows, dtype=torch.float64)
        for row in range(self.rows):
            moves[:, row] = (uniforms[:, row] < self._p_right(theta, row, k)).to(torch.float64)
            k = k + moves[:, row]
        return k.unsqueeze(1), moves

    def joint_log_prob(self, z: Tensor, theta: Tensor) -> Tensor:
        """log p(path | θ) = Σ_rows log p(move | θ, position), (n,)."""
        theta = as_rows(theta, z.shape[0])[:, 0]
        z = z.to(torch.float64)
        k_before = torch.cumsum(z, dim=1) - z  # right moves before each row
        total = torch.zeros_like(theta)
        for row in range(self.rows):
            p = self._p_right(theta, row, k_before[:, row])
            total = total + torch.log(torch.where(z[:, row] > 0.5, p, 1 - p))
        return total

    def slot_log_probs(self, theta: Tensor) -> Tensor:
        """Exact log p(slot | θ) for every slot, by dynamic programming: θ (n, 1) or (n,) → (n, rows + 1)."""
        theta = torch.as_tensor(theta, dtype=torch.float64).reshape(-1)
        n = theta.shape[0]
        prob = torch.zeros(n, self.rows + 1, dtype=torch.float64)
        prob[:, 0] = 1.0
        k = torch.arange(self.rows + 1, dtype=torch.float64).expand(n, -1)
        for row in range(self.rows):
            p_right = self._p_right(theta, row, k)
            prob = prob * (1 - p_right) + torch.nn.functional.pad((prob * p_right)[:, :-1], (1, 0))
        return torch.log(prob.clamp_min(1e-300))

    def log_prob(self, x: Tensor, theta: Tensor) -> Tensor:
        """Exact log p(x | θ), (n,)."""
        x = torch.as_tensor(x, dtype=torch.float64)
        slots = x[:, :1].round().long()
        theta = torch.as_tensor(theta, dtype=torch.float64)
        if theta.dim() == 1:  # one point: one table, and differentiable in any mode (forward mode: Fisher information)
            return self.slot_log_probs(theta.reshape(1))[0][slots[:, 0]]
        # One dynamic-programming table per distinct θ, not per event (scans share θ across events).
        unique, inverse = torch.unique(as_rows(theta, x.shape[0])[:, 0], return_inverse=True)
        table = self.slot_log_probs(unique)[inverse]
        return table.gather(1, slots).squeeze(1)


class MultiParameterGaussian:
    r"""Two parameters, five observables, exact likelihood.

    Latent z ∈ R⁵ with independent components z_i ~ N(μ_i(θ), σ_i(θ)), where the means are quadratic and
    the widths log-linear in θ = (θ_1, θ_2); the observables mix the smeared latents with a fixed rotation,
    x = Q (z + ε), ε ~ N(0, σ_x² 1). Hence p(x | θ) = N(x; Q μ(θ), Q diag(σ(θ)² + σ_x²) Qᵀ) exactly, and
    the log ratio is a non-trivial quadratic form in x that mixes all five observables.
    """

    observable_names = ("x0", "x1", "x2", "x3", "x4")

    # Row i: μ_i = a θ1 + b θ2 + c θ1 θ2 + e θ1²; log σ_i = d1 θ1 + d2 θ2.
    _A = (1.0, 0.5, 0.0, -0.8, 0.3)
    _B = (0.0, 0.7, 1.0, 0.4, -0.5)
    _C = (0.3, 0.0, -0.4, 0.0, 0.5)
    _E = (0.0, 0.4, 0.0, 0.3, 0.0)
    _D1 = (0.0, 0.15, 0.0, -0.2, 0.0)
    _D2 = (0.0, 0.2, -0.3, 0.0, 0.25)

    def __init__(self, sigma_x: float = 0.5, bounds: Sequence[tuple[float, float]] = ((-1.0, 1.0), (-1.0, 1.0)), mixing_seed: int = 7):
        _require(0 < sigma_x < math.inf, f"sigma_x must be positive and finite (got {sigma_x})")
        _require(isinstance(mixing_seed, int) and 0 <= mixing_seed < 2**63, f"mixing_seed must be an integer >= 0 (got {mixing_seed!r})")
        try:
            (l1, h1), (l2, h2) = bounds
        except (TypeError, ValueError):
            raise ValueError(f"bounds must be two pairs (low, high) (got {bounds!r})") from None
        self.sigma_x = float(sigma_x)
        self.space = ParameterSpace([Parameter("theta1", l1, h1), Parameter("theta2", l2, h2)])
        gen = torch.Generator().manual_seed(mixing_seed)
        q, _ = torch.linalg.qr(torch.randn(5, 5, generator=gen, dtype=torch.float64))
        self.mixing = q  # orthogonal, (5, 5)
        cols = [torch.tensor(c, dtype=torch.float64) for c in (self._A, self._B, self._C, self._E, self._D1, self._D2)]
        self._coef = torch.stack(cols)  # (6, 5)

    def _latent_params(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """μ(θ), σ(θ), each (n, 5), for θ (n, 2)."""
        t1, t2 = theta[:, :1], theta[:, 1:2]
        a, b, c, e, d1, d2 = self._coef
        mean = a * t1 + b * t2 + c * t1 * t2 + e * t1**2
        std = torch.exp(d1 * t1 + d2 * t2)
        return mean, std

    def sample(self, theta: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """θ (n, 2) → x (n, 5), z (n, 5)."""
        theta = torch.as_tensor(theta, dtype=torch.float64).reshape(-1, 2)
        mean, std = self._latent_params(theta)
        z = mean + std * torch.randn(mean.shape, generator=generator, dtype=torch.float64)
        smeared = z + self.sigma_x * torch.randn(mean.shape, generator=generator, dtype=torch.float64)
        return smeared @ self.mixing.T, z

    def joint_log_prob(self, z: Tensor, theta: Tensor) -> Tensor:
        """Σ_i log N(z_i; μ_i(θ), σ_i(θ)), (n,)."""
        mean, std = self._latent_params(as_rows(theta, z.shape[0]))
        return _normal_log_prob(z, mean, std).sum(dim=1)

    def log_prob(self, x: Tensor, theta: Tensor) -> Tensor:
        """Exact log p(x | θ), (n,)."""
        x = torch.as_tensor(x, dtype=torch.float64)
        mean, std = self._latent_params(as_rows(theta, x.shape[0]))
        rotated = x @ self.mixing  # Qᵀ x, row-wise; Q is orthogonal so the Jacobian is 1
        total_std = torch.sqrt(std**2 + self.sigma_x**2)
        return _normal_log_prob(rotated, mean, total_std).sum(dim=1)


class TwoMoons:
    r"""The two-moons task of the sbibm benchmark (Greenberg, Nonnenmacher, Macke, arXiv:1905.07488; Lueckmann et
    al., arXiv:2101.04653): two parameters, two observables, a crescent-shaped bimodal posterior.

    With a ~ U(−π/2, π/2) and r ~ N(0.1, 0.01) (the latent z = (a, r)),

    .. math:: x = \begin{pmatrix} r \cos a + 0.25 \\ r \sin a \end{pmatrix}
              + \begin{pmatrix} -|θ_1 + θ_2| / \sqrt2 \\ (-θ_1 + θ_2) / \sqrt2 \end{pmatrix},

    θ uniform on [−1, 1]² (reference 0). x is a deterministic function of z and θ, and z does not depend on θ: the
    joint ratio is 1 and the joint score 0, so gold mining teaches nothing here — train with ``carl``, the densities
    (``nde``) or a posterior (``training.posterior``). The marginal likelihood vanishes outside a half-ring, so it is
    not offered as an exact ``log_prob`` (log ratios of ±∞).
    """

    observable_names = ("x1", "x2")

    def __init__(self, low: float = -1.0, high: float = 1.0):
        self.space = ParameterSpace([Parameter("theta1", low, high), Parameter("theta2", low, high)])

    def sample(self, theta: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """θ (n, 2) → x (n, 2), z = (a, r) (n, 2)."""
        theta = torch.as_tensor(theta, dtype=torch.float64).reshape(-1, 2)
        n = theta.shape[0]
        a = math.pi * (torch.rand(n, generator=generator, dtype=torch.float64) - 0.5)
        r = 0.1 + 0.01 * torch.randn(n, generator=generator, dtype=torch.float64)
        shift = torch.stack([-(theta[:, 0] + theta[:, 1]).abs(), theta[:, 1] - theta[:, 0]], dim=1) / math.sqrt(2)
        x = torch.stack([r * torch.cos(a) + 0.25, r * torch.sin(a)], dim=1) + shift
        return x, torch.stack([a, r], dim=1)

    def joint_log_prob(self, z: Tensor, theta: Tensor) -> Tensor:
        """log p(z) (n,): the latent's density, free of θ (zero joint score)."""
        theta = as_rows(theta, z.shape[0])
        log_r = _normal_log_prob(z[:, 1], torch.tensor(0.1, dtype=z.dtype), torch.tensor(0.01, dtype=z.dtype))
        return log_r - math.log(math.pi) + 0.0 * theta.sum(dim=1)
