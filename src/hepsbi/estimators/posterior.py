r"""Neural posterior estimation (NPE): a normalising flow q̂(θ | x), amortised over x.

Trained by maximum likelihood, −log q̂(θ_i | x_i), on pairs (θ_i, x_i) with θ_i drawn from the prior and x_i from the
simulator at θ_i (Papamakarios, Murray, arXiv:1605.06376; Greenberg, Nonnenmacher, Macke, arXiv:1905.07488), its
minimiser is the posterior p(θ | x) under that prior. The flow (zuko, as for
:class:`~hepsbi.estimators.density.DensityEstimator`) acts on standardised θ with the embedding of standardised x
as context — the embedding slot of every kind, so a set encoder or a convolutional network summarises x.

The prior is the :class:`~hepsbi.space.ParameterSpace`'s: its samplers draw the training θ (uniform, or normal
truncated to the box), and the flow's mass outside the box — which a flow on the real line always keeps some of —
is rejected: :meth:`PosteriorEstimator.sample` draws until ``n`` samples lie inside, and
:meth:`PosteriorEstimator.log_prob` adds −log(accepted share) (estimated once per observation) so that the
truncated density integrates to one, and is −∞ outside.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from hepsbi.data.training import TrainingData
from hepsbi.errors import EstimatorError
from hepsbi.estimators._arrays import to_tensor
from hepsbi.estimators.base import Estimator
from hepsbi.estimators.density import check_flow, flow_network, mixture_draws, single_flow_keys
from hepsbi.estimators.losses import weighted_mean
from hepsbi.estimators.networks import Standardize, embedding_slot
from hepsbi.estimators.training import TrainingConfig, normalised_weights
from hepsbi.space import ParameterSpace

__all__ = ["PosteriorEstimator", "PosteriorModel"]

#: samples drawn to estimate the flow's mass inside the prior box, per observation
LEAKAGE_SAMPLES = 10_000

#: what ``adjust`` may be: the flow models standardised θ itself, or its residual from a linear regression on x
ADJUSTMENTS = ("none", "linear")


class LinearAdjustment(nn.Module):
    r"""The regression adjustment of standardised θ, z (n, p), given standardised x, u (n, d_x):
    z′ = L⁻¹ (z − B u − c), with (B, c) the weighted least-squares regression of z on u and L L^T the covariance of
    its residuals — the linear regression adjustment of ABC (Beaumont, Zhang, Balding, Genetics 162 (2002) 2025),
    here as the flow's first, fixed, affine layer: the flow learns only what the linear-Gaussian fit leaves over.
    A Gaussian posterior whose mean is linear in x (the Gaussian-linear model) becomes exactly N(0, 1) and is
    left to the flow's identity; log |∂z′/∂z| = −Σ_i log L_ii.

    Buffers (saved with the model): ``slope`` B (p, d_x), ``intercept`` c (p,), ``chol`` L (p, p) lower-triangular.
    """

    slope: Tensor
    intercept: Tensor
    chol: Tensor

    def __init__(self, d_x: int, p: int):
        super().__init__()
        self.register_buffer("slope", torch.zeros(p, d_x))
        self.register_buffer("intercept", torch.zeros(p))
        self.register_buffer("chol", torch.eye(p))

    def fit(self, z: Tensor, u: Tensor, weights: Tensor, ridge: float = 1e-3) -> LinearAdjustment:
        """Weighted least squares with a small ridge (``ridge`` · Σw on the slope), then the Cholesky factor of the
        weighted residual covariance. z (n, p), u (n, d_x), weights (n,)."""
        z, u, w = z.double(), u.reshape(len(u), -1).double(), weights.double().reshape(-1, 1)
        design = torch.cat([u, torch.ones(len(u), 1, dtype=u.dtype, device=u.device)], dim=1)
        gram = design.T @ (w * design)
        penalty = torch.eye(design.shape[1], dtype=u.dtype, device=u.device) * ridge * float(w.sum())
        penalty[-1, -1] = 0.0
        beta = torch.linalg.solve(gram + penalty, design.T @ (w * z))
        residual = z - design @ beta
        cov = residual.T @ (w * residual) / w.sum()
        chol, info = torch.linalg.cholesky_ex(cov + 1e-9 * torch.eye(z.shape[1], dtype=z.dtype, device=z.device))
        if int(info) != 0:
            raise EstimatorError("adjust='linear': the residual covariance of θ's regression on x is not positive "
                                 "definite (are the training weights mostly negative?); use adjust='none'")
        self.slope.copy_(beta[:-1].T)
        self.intercept.copy_(beta[-1])
        self.chol.copy_(chol)
        return self

    def forward(self, z: Tensor, u: Tensor) -> Tensor:
        """z′ (n, p) of z (n, p) given u (n or 1, d_x)."""
        residual = z - u.reshape(len(u), -1) @ self.slope.T - self.intercept
        return torch.linalg.solve_triangular(self.chol, residual.T, upper=False).T

    def inverse(self, z_prime: Tensor, u: Tensor) -> Tensor:
        """z (n, p) of z′ (n, p) given u (n or 1, d_x): L z′ + B u + c."""
        return z_prime @ self.chol.T + u.reshape(len(u), -1) @ self.slope.T + self.intercept

    def log_jacobian(self) -> Tensor:
        """log |∂z′/∂z| = −Σ_i log L_ii (a scalar)."""
        return -torch.log(torch.diagonal(self.chol)).sum()


class PosteriorModel(nn.Module):
    r"""``members`` zuko flows on standardised θ with the embedding of standardised x as context; the posterior is
    their equal mixture, q̂(θ | x) = (1/K) Σ_k q̂_k(θ | x).

    Arguments:
        x_shape: one event's x.  n_theta: parameters.  flow: a key of
        :data:`~hepsbi.estimators.density.FLOWS`.  transforms, hidden, activation: each flow's.  embedding: e(x) (default:
        flatten), shared by the members.  members: K, the flows of the mixture.  adjust: ``linear`` puts a
        :class:`LinearAdjustment` between the standardisation and the flows.
    """

    def __init__(self, x_shape: tuple[int, ...], n_theta: int, flow: str = "nsf", transforms: int = 5,
                 hidden: Sequence[int] = (64, 64), embedding: nn.Module | None = None, members: int = 1,
                 adjust: str = "none", activation: str = "relu"):
        super().__init__()
        self.x_shape = tuple(x_shape)
        self.x_scale = Standardize(self.x_shape[-1])
        self.theta_scale = Standardize(n_theta)
        self.adjustment = LinearAdjustment(math.prod(self.x_shape), n_theta) if adjust == "linear" else None
        self.embedding, width = embedding_slot(embedding, self.x_shape)
        self.flows = nn.ModuleList([flow_network(flow, n_theta, width, transforms, hidden, activation)
                                    for _ in range(members)])
        self._register_load_state_dict_pre_hook(single_flow_keys)

    def distributions(self, x: Tensor) -> list[Any]:
        """Each member's distribution of standardised θ given x (n, \\*x_shape)."""
        context = self.embedding(self.x_scale(x))
        return [flow(context) for flow in self.flows]

    def member_log_probs(self, theta: Tensor, x: Tensor) -> Tensor:
        """log q̂_k(θ | x) of every member, (K, n), of θ itself (before any truncation to the prior)."""
        z, log_jacobian = self.theta_scale(theta), -torch.log(self.theta_scale.std).sum()
        if self.adjustment is not None:
            z, log_jacobian = self.adjustment(z, self.x_scale(x)), log_jacobian + self.adjustment.log_jacobian()
        return torch.stack([d.log_prob(z) for d in self.distributions(x)]) + log_jacobian

    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """log q̂(θ | x) = logsumexp_k log q̂_k(θ | x) − log K, (n,), of θ itself (before any truncation)."""
        members = self.member_log_probs(theta, x)
        return torch.logsumexp(members, dim=0) - math.log(members.shape[0])

    def draws(self, x: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n draws (n, p) of θ from the mixture at one x (1, \\*x_shape): each draw's member uniformly at random."""
        theta = mixture_draws(self.distributions(x), n, self.theta_scale.mean.shape[0], self.theta_scale.mean.device,
                              generator)
        if self.adjustment is not None:
            theta = self.adjustment.inverse(theta, self.x_scale(x))
        return self.theta_scale.inverse(theta)


class PosteriorEstimator(Estimator):
    r"""q̂(θ | x) by neural posterior estimation (module docstring).

    Arguments:
        space: the parameter space: its box is the prior's support (and, with the data's θ sampler, its prior).
        flow: ``nsf`` (default), ``maf`` or ``realnvp``.  transforms, hidden: the flow's.
        activation: the flow's conditioner activation: ``relu`` (default), ``tanh`` or ``silu``. A smooth one suits
            a posterior whose location and scale move smoothly with x: on sbibm's bernoulli_glm at 1e3, five MAFs
            reach a Gaussian KL to the reference of 1.22 with ``tanh`` against 1.55 with ``relu`` (sbi's MAF,
            which uses tanh: 1.69; benchmarks/README.md).
        embedding: a module summarising standardised x (n, \\*shape) into (n, d_e) (the embedding slot).
        members: K flows trained side by side from different initial weights (each on the NLL of its own), the
            posterior their equal mixture — a deep ensemble (Lakshminarayanan et al., arXiv:1612.01474), which at
            small simulation budgets is both more accurate and more conservative than one flow (Hermans et al.,
            arXiv:2208.13624). Training and sampling cost K times one flow's.
        adjust: ``none`` (default) or ``linear``: the flows model the residual of θ's linear regression on x,
            whitened (:class:`LinearAdjustment`, fitted once before training) — for posteriors whose location moves
            linearly with x, which a spline flow otherwise has to learn knot by knot.
        config: a :class:`TrainingConfig`; keyword ``options`` override its fields (``epochs=50``, ``seed=1``).

    Example:
        >>> from hepsbi.simulators import GaussianLatent
        >>> sim = GaussianLatent()
        >>> data = TrainingData.from_simulator(sim, n=2000, seed=0)
        >>> est = PosteriorEstimator(sim.space, epochs=2, progress=False).fit(data)
        >>> est.sample(torch.tensor([0.3]), 5).shape
        torch.Size([5, 1])
    """

    kind = "PosteriorEstimator"
    OPTIONS = ("flow", "transforms", "hidden", "activation", "members", "adjust")
    ARCHITECTURE = OPTIONS

    def __init__(self, space: ParameterSpace | None = None, flow: str = "nsf", transforms: int = 5,
                 hidden: Sequence[int] = (64, 64), embedding: nn.Module | None = None, members: int = 1,
                 adjust: str = "none", activation: str = "relu", config: TrainingConfig | None = None,
                 **options: Any):
        transforms = check_flow(flow, transforms, activation)
        if int(members) != members or members < 1:
            raise EstimatorError(f"members must be a positive integer (got {members!r})")
        if adjust not in ADJUSTMENTS:
            raise EstimatorError(f"adjust must be one of {list(ADJUSTMENTS)} (got {adjust!r})")
        super().__init__(hidden, embedding, config, **options)
        self.flow = flow
        self.transforms = transforms
        self.members = int(members)
        self.adjust = adjust
        self.activation = activation
        self.prior_space = space
        self._leakage: dict[bytes, float] = {}

    def network(self, x_shape: tuple[int, ...], space: ParameterSpace) -> PosteriorModel:
        return PosteriorModel(x_shape, space.dim, self.flow, self.transforms, self.hidden, self.embedding, self.members,
                              self.adjust, self.activation)

    @property
    def _model(self) -> PosteriorModel:
        model = self._require_model()
        assert isinstance(model, PosteriorModel)
        return model

    # -- training ------------------------------------------------------------------------------------------------
    def fit(self, theta: Any, x: Any = None) -> PosteriorEstimator:
        """Train on prior draws θ (n, p) and their simulations x (n, \\*x_shape), or on a
        :class:`~hepsbi.data.training.TrainingData` (its rows drawn at θ, y = 1: their θ follow the data's θ sampler,
        the prior). Returns self."""
        if isinstance(theta, TrainingData):
            if x is not None:
                raise EstimatorError("fit takes a TrainingData or (theta, x), not both")
            return super().fit(theta)
        if self.prior_space is None:
            raise EstimatorError("fit(theta, x) needs the parameter space: PosteriorEstimator(space, ...)")
        data = TrainingData.simulations(theta, x, self.prior_space, what="PosteriorEstimator.fit")
        return super().fit(data)

    def check(self, data: TrainingData) -> None:
        if not bool((data.y > 0.5).any()):
            raise EstimatorError("NPE trains on the rows drawn at θ (y = 1); this data has none")
        if self.prior_space is not None and list(self.prior_space.names) != list(data.space.names):
            raise EstimatorError(f"the data's parameters {list(data.space.names)} are not the estimator's "
                                 f"{list(self.prior_space.names)}")

    def tensors(self, data: TrainingData) -> dict[str, Tensor]:
        drawn = data.y > 0.5
        return {"x": data.x[drawn].float(), "theta": data.theta[drawn].float(),
                "weights": normalised_weights(data.weights[drawn]).float()}

    def prepare(self, tensors: dict[str, Tensor]) -> None:
        self._model.x_scale.fit(tensors["x"])
        self._model.theta_scale.fit(tensors["theta"])
        if self._model.adjustment is not None:
            self._model.adjustment.fit(self._model.theta_scale(tensors["theta"]), self._model.x_scale(tensors["x"]),
                                       tensors["weights"])
        self._leakage = {}

    def batch_loss(self, batch: dict[str, Tensor], training: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """−w log q̂_k(θ | x), averaged over the members (each is trained as a posterior of its own)."""
        nll = weighted_mean(-self._model.member_log_probs(batch["theta"], batch["x"]).mean(dim=0), batch["weights"])
        return nll, {"nll": nll.detach()}

    # -- posterior ------------------------------------------------------------------------------------------------
    def _observation(self, x_obs: Any) -> Tensor:
        xt, _ = to_tensor(x_obs, "x_obs", self._x_shape)
        if xt.shape[0] != 1:
            raise EstimatorError(f"one observation at a time: x_obs of shape {self._x_shape} or (1, ...) (got "
                                 f"{tuple(xt.shape)})")
        return xt.to(self.device)

    def _inside(self, theta: Tensor) -> Tensor:
        assert self.space is not None
        return self.space.inside(theta)

    def sample(self, x_obs: Any, n: int, generator: torch.Generator | None = None, max_rounds: int = 100) -> Tensor:
        """n draws (n, p), float64, from q̂(θ | x_obs) truncated to the prior box (draws outside are rejected)."""
        model = self._model
        xt = self._observation(x_obs)
        kept: list[Tensor] = []
        have = 0
        for _ in range(max_rounds):
            theta = model.draws(xt, max(2 * (n - have), 64), generator).double()
            theta = theta[self._inside(theta)]
            kept.append(theta)
            have += len(theta)
            if have >= n:
                return torch.cat(kept)[:n].cpu()
        raise EstimatorError(f"fewer than {n} of the posterior's draws lie inside the prior after {max_rounds} rounds: "
                             "x_obs is far outside what the estimator was trained on")

    def log_prob(self, theta: Any, x_obs: Any) -> Tensor:
        """log q̂(θ | x_obs) of θ (m, p) or (p,), truncated to the prior box and renormalised (−∞ outside): (m,),
        float64."""
        model = self._model
        xt = self._observation(x_obs)
        th = torch.as_tensor(theta, dtype=torch.float64).reshape(-1, model.theta_scale.mean.shape[0])
        with torch.no_grad():
            log_q = model.log_prob(th.float().to(self.device), xt.expand(th.shape[0], *xt.shape[1:])).double().cpu()
        return torch.where(self._inside(th), log_q - self._log_accepted(xt), torch.full_like(log_q, -torch.inf))

    def _log_accepted(self, xt: Tensor) -> float:
        """log of the flow's mass inside the prior box for this observation (Monte Carlo, cached)."""
        key = xt.detach().cpu().numpy().tobytes()
        if key not in self._leakage:
            model = self._model
            theta = model.draws(xt, LEAKAGE_SAMPLES, torch.Generator().manual_seed(self.config.seed)).double()
            share = float(self._inside(theta).double().mean())
            self._leakage[key] = float(torch.log(torch.tensor(max(share, 1.0 / LEAKAGE_SAMPLES))))
        return self._leakage[key]
