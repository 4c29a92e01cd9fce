r"""Neural density estimation: a normalising flow p̂(x | θ) (NDE), optionally trained with SCANDAL's score term.

The flow (zuko: ``nsf`` — autoregressive rational-quadratic splines, Durkan et al., arXiv:1906.04032 — ``maf``,
Papamakarios et al., arXiv:1705.07057, or ``realnvp``) acts on standardised x with standardised θ as its context;
the standardisation's Jacobian is added back, so :meth:`DensityEstimator.log_prob` is the density of x itself.
Training maximises the weighted log-likelihood of every row at the θ it was drawn at (θ for y = 1, θ_ref for
y = 0 — both are samples of the model), and SCANDAL (Brehmer, Louppe, Pavez, Cranmer, arXiv:1805.12244) adds
α ‖∇_θ log p̂(x | θ) − t(x, z | θ)‖² on the rows drawn at θ (where E[t(x, z | θ) | x] = t(x | θ)), with the score
components in units of their spread as for the ratio methods:

.. math:: ℓ = -\,w \log p̂(x \mid θ) + α\, y\, w \sum_k s_k \big(∇_{θ_k} \log p̂(x \mid θ) - t_k(x, z \mid θ)\big)^2 .

A density gives the ratio door too: log r̂(x | θ) = log p̂(x | θ) − log p̂(x | θ_ref), so a spec compares it with the
ratio estimators; :meth:`DensityEstimator.sample` is a fast surrogate of the simulator. ``conditional=False``
learns p̂(x) alone (θ ignored): what anomaly detection and calorimeter surrogates build on.

Integer observables (a count, a slot, a number of jets) have no density: ``dequantise`` adds uniform noise in
[−½, ½) to those columns at every training step, so the flow learns a density that is nearly constant over each
unit interval and p̂(k | θ) at the integer k estimates the probability of k (Uria, Murray, Larochelle,
arXiv:1306.0186; Theis, van den Oord, Bethge, arXiv:1511.01844).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from hepsbi.data.training import TrainingData
from hepsbi.errors import EstimatorError
from hepsbi.estimators._arrays import EVAL_BATCH, give_back, place, to_tensor
from hepsbi.estimators.base import LogRatioEstimator
from hepsbi.estimators.losses import score_mse, score_scale, weighted_mean
from hepsbi.estimators.networks import Standardize
from hepsbi.estimators.training import TrainingConfig, normalised_weights
from hepsbi.space import ParameterSpace

__all__ = ["ACTIVATIONS", "FLOWS", "DensityEstimator", "DensityModel", "check_flow", "flow_draws", "flow_network",
           "mixture_draws", "single_flow_keys"]

#: the flows a DensityEstimator can use: name → zuko class name
FLOWS = {"nsf": "NSF", "maf": "MAF", "realnvp": "RealNVP"}

#: the activations of a flow's conditioner networks: ``relu`` (zuko's default, and every flow saved before the option
#: existed), or the smooth ``tanh`` and ``silu``
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU}


def check_flow(flow: str, transforms: int, activation: str = "relu") -> int:
    """The number of transformations, after checking ``flow`` is a key of :data:`FLOWS`, ``transforms`` ≥ 1 and
    ``activation`` a key of :data:`ACTIVATIONS`."""
    if flow not in FLOWS:
        raise EstimatorError(f"unknown flow {flow!r}; choose one of {list(FLOWS)}")
    if activation not in ACTIVATIONS:
        raise EstimatorError(f"unknown activation {activation!r}; choose one of {list(ACTIVATIONS)}")
    if int(transforms) < 1:
        raise EstimatorError(f"transforms must be >= 1 (got {transforms})")
    return int(transforms)


def flow_network(flow: str, features: int, context: int, transforms: int, hidden: Sequence[int],
                 activation: str = "relu") -> nn.Module:
    """The zuko flow ``flow`` on ``features`` dimensions with ``context`` conditioning inputs (0: none), its
    conditioners' hidden layers ``hidden`` with the activation ``activation`` (a key of :data:`ACTIVATIONS`)."""
    import zuko

    return getattr(zuko.flows, FLOWS[flow])(features=features, context=context, transforms=transforms,
                                            hidden_features=tuple(hidden), activation=ACTIVATIONS[activation])


def flow_draws(distribution: Any, n: int, generator: torch.Generator | None = None) -> Tensor:
    """n draws (n, …) of a flow's distribution without gradients, from torch's global generator (zuko draws from
    it) or, reproducibly, from a fork of it seeded by ``generator``."""
    with torch.no_grad():
        if generator is None:
            return distribution.sample((int(n),))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
            return distribution.sample((int(n),))


def mixture_draws(distributions: Sequence[Any], n: int, width: int, device: torch.device | str,
                  generator: torch.Generator | None = None) -> Tensor:
    """n draws (n, width) of the equal mixture of ``distributions`` (each of one event: no batch, or a batch of 1):
    each draw's member uniformly at random (from ``generator``), then that member's draws (:func:`flow_draws`)."""
    which = torch.randint(len(distributions), (int(n),), generator=generator)
    out = torch.empty(int(n), int(width), device=device)
    for k, dist in enumerate(distributions):
        chosen = which == k
        if chosen.any():
            out[chosen.to(out.device)] = flow_draws(dist, int(chosen.sum()), generator).reshape(-1, int(width))
    return out


class DensityModel(nn.Module):
    r"""``members`` zuko flows on standardised x with standardised θ as context (none when unconditional); the density
    is their equal mixture, p̂(x | θ) = (1/K) Σ_k p̂_k(x | θ).

    Arguments:
        n_x: observables.  n_theta: parameters (0: unconditional).  flow: a key of :data:`FLOWS`.
        transforms: flow transformations.  hidden: hidden layer widths of each transformation's network.
        activation: their activation, a key of :data:`ACTIVATIONS`.  members: K, the flows of the mixture.
    """

    def __init__(self, n_x: int, n_theta: int, flow: str = "nsf", transforms: int = 5,
                 hidden: Sequence[int] = (64, 64), activation: str = "relu", members: int = 1):
        super().__init__()
        self.x_shape = (n_x,)
        self.x_scale = Standardize(n_x)
        self.theta_scale = Standardize(max(n_theta, 1))
        self.n_theta = n_theta
        self.flows = nn.ModuleList([flow_network(flow, n_x, n_theta, transforms, hidden, activation)
                                    for _ in range(members)])
        self._register_load_state_dict_pre_hook(single_flow_keys)

    def distributions(self, theta: Tensor | None) -> list[Any]:
        """Each member's distribution of standardised x, given θ (n, p) (None when unconditional)."""
        return [self.member_distribution(k, theta) for k in range(len(self.flows))]

    def member_distribution(self, k: int, theta: Tensor | None) -> Any:
        """Member k's distribution of standardised x, given θ (n, p) (None when unconditional)."""
        if self.n_theta == 0:
            return self.flows[k]()
        assert theta is not None
        return self.flows[k](self.theta_scale(theta))

    def member_log_prob(self, k: int, x: Tensor, theta: Tensor | None) -> Tensor:
        """log p̂_k(x | θ), (n,), of x (n, d) itself: member k's density of standardised x minus Σ log σ_x."""
        return self.member_distribution(k, theta).log_prob(self.x_scale(x)) - torch.log(self.x_scale.std).sum()

    def member_log_probs(self, x: Tensor, theta: Tensor | None) -> Tensor:
        """log p̂_k(x | θ) of every member, (K, n)."""
        return torch.stack([self.member_log_prob(k, x, theta) for k in range(len(self.flows))])

    def log_prob(self, x: Tensor, theta: Tensor | None) -> Tensor:
        """log p̂(x | θ) = logsumexp_k log p̂_k(x | θ) − log K, (n,)."""
        members = self.member_log_probs(x, theta)
        return torch.logsumexp(members, dim=0) - math.log(members.shape[0])

    def draws(self, theta: Tensor | None, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n draws (n, d) of x from the mixture at one θ (1, p) (None when unconditional): each draw's member uniformly
        at random."""
        dists = self.distributions(theta)
        if len(dists) == 1:  # one flow: its draws alone (the generator's stream as before members existed)
            return self.x_scale.inverse(flow_draws(dists[0], n, generator).reshape(-1, self.x_shape[0]))
        return self.x_scale.inverse(mixture_draws(dists, n, self.x_shape[0], self.x_scale.mean.device, generator))

    def forward(self, x: Tensor, theta: Tensor | None) -> Tensor:
        return self.log_prob(x, theta)


def single_flow_keys(state: dict[str, Any], prefix: str, *_: Any) -> None:
    """A load_state_dict pre-hook: models saved with one flow named ``flow`` (before ``members`` existed) have their
    keys renamed to member 0's (``flows.0``)."""
    for key in [k for k in state if k.startswith(prefix + "flow.")]:
        state[prefix + "flows.0." + key[len(prefix + "flow."):]] = state.pop(key)


class DensityEstimator(LogRatioEstimator):
    r"""Learns p̂(x | θ) with a normalising flow (module docstring); methods ``nde`` and ``scandal``.

    Arguments:
        method: ``nde`` or ``scandal`` (default: ``scandal`` when ``scandal_alpha`` is given, else ``nde``).
        flow: ``nsf`` (default), ``maf`` or ``realnvp``.
        scandal_alpha: α of the score term (``scandal``: 1 when not given; ``nde``: none).
        transforms: flow transformations.  hidden: hidden layer widths of each transformation's network.
        activation: their activation: ``relu`` (default), ``tanh`` or ``silu`` (smooth: log p̂ smooth in θ).
        conditional: learn p̂(x | θ) (default) or p̂(x) alone.
        members: K flows trained side by side from different initial weights (each on the loss of its own), the
            density their equal mixture (log p̂ = logsumexp_k log p̂_k − log K; each draw of :meth:`sample` picks its
            member): a deep ensemble (Lakshminarayanan et al., arXiv:1612.01474), as ``PosteriorEstimator``'s.
            Training and evaluation cost K times one flow's.
        dequantise: observables (names, or True for all) that take integer values: uniform noise in [−½, ½) is added
            to them at every training step (module docstring).
        config: a :class:`TrainingConfig`; keyword ``options`` override its fields (``epochs=50``, ``seed=1``).

    Example:
        >>> from hepsbi.simulators import GaussianLatent
        >>> data = TrainingData.from_simulator(GaussianLatent(), n=1000, seed=0)
        >>> est = DensityEstimator(epochs=2, progress=False).fit(data)
        >>> est.sample(torch.tensor([0.5]), 3).shape
        torch.Size([3, 1])
    """

    kind = "DensityEstimator"
    OPTIONS = ("method", "flow", "scandal_alpha", "transforms", "hidden", "activation", "conditional", "dequantise",
               "members")
    ARCHITECTURE = ("flow", "transforms", "hidden", "activation", "members")

    def __init__(self, method: str | None = None, flow: str = "nsf", scandal_alpha: float | None = None,
                 transforms: int = 5, hidden: Sequence[int] = (64, 64), activation: str = "relu",
                 conditional: bool = True,
                 dequantise: bool | Sequence[str] = False, members: int = 1, config: TrainingConfig | None = None,
                 embedding: nn.Module | None = None, **options: Any):
        if embedding is not None:
            raise EstimatorError("a DensityEstimator takes no embedding: x is what its flow models")
        transforms = check_flow(flow, transforms, activation)
        if int(members) != members or members < 1:
            raise EstimatorError(f"members must be a positive integer (got {members!r})")
        if method not in (None, "nde", "scandal"):
            raise EstimatorError(f"DensityEstimator methods are 'nde' and 'scandal' (got {method!r})")
        if method == "scandal" and scandal_alpha is None:
            scandal_alpha = 1.0
        if method == "nde" and scandal_alpha:
            raise EstimatorError("method 'nde' has no score term: drop scandal_alpha or use method 'scandal'")
        if scandal_alpha is not None and not scandal_alpha >= 0:
            raise EstimatorError(f"scandal_alpha must be >= 0 (got {scandal_alpha})")
        super().__init__(hidden, None, config, **options)
        self.method = "scandal" if scandal_alpha else "nde"
        self.flow = flow
        self.scandal_alpha = None if not scandal_alpha else float(scandal_alpha)
        self.transforms = transforms
        self.activation = activation
        self.conditional = bool(conditional)
        self.members = int(members)
        if self.scandal_alpha and not self.conditional:
            raise EstimatorError("SCANDAL's score term needs a conditional density (conditional=True)")
        self.dequantise: bool | list[str] = dequantise if isinstance(dequantise, bool) else list(dequantise)
        self._noise: tuple[Tensor, torch.Generator] | None = None  # (column mask, generator) of the dequantisation

    def network(self, x_shape: tuple[int, ...], space: ParameterSpace) -> DensityModel:
        if len(x_shape) != 1:
            raise EstimatorError(f"a DensityEstimator models x of shape (n, d) (got events of shape {x_shape})")
        return DensityModel(x_shape[0], space.dim if self.conditional else 0, self.flow, self.transforms, self.hidden,
                            self.activation, self.members)

    @property
    def _model(self) -> DensityModel:
        model = self._require_model()
        assert isinstance(model, DensityModel)
        return model

    # -- training ------------------------------------------------------------------------------------------------
    def check(self, data: TrainingData) -> None:
        if data.x.dim() != 2:
            raise EstimatorError(f"a DensityEstimator models x of shape (n, d) (got {tuple(data.x.shape)})")
        if not isinstance(self.dequantise, bool):
            unknown = [n for n in self.dequantise if n not in data.observable_names]
            if unknown:
                raise EstimatorError(f"dequantise: {unknown[0]!r} is not an observable of the data "
                                     f"({list(data.observable_names)})")

    def tensors(self, data: TrainingData) -> dict[str, Tensor]:
        drawn = data.y > 0.5
        reference = data.space.reference.to(data.theta.dtype).expand_as(data.theta)
        return {"x": data.x.float(), "theta": torch.where(drawn[:, None], data.theta, reference).float(),
                "y": data.y.float(), "t_xz": data.t_xz.float(), "weights": normalised_weights(data.weights).float()}

    def prepare(self, tensors: dict[str, Tensor]) -> None:
        model = self._model
        integer = self.features if self.dequantise is True else self.dequantise or []
        mask = torch.tensor([float(name in integer) for name in self.features])
        self._noise = (mask, torch.Generator().manual_seed(self.config.seed)) if bool(mask.any()) else None
        model.x_scale.fit(tensors["x"])
        model.theta_scale.fit(tensors["theta"])
        self.loss_scales["score"] = score_scale(tensors["t_xz"], tensors["y"], tensors["weights"])

    def batch_loss(self, batch: dict[str, Tensor], training: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """−w log p̂_k(x | θ), plus α times the score term (SCANDAL) on the rows drawn at θ, averaged over the members
        (each is trained as a density of its own)."""
        model = self._model
        x = batch["x"]
        if self._noise is not None:  # dequantisation: fresh uniform noise on the integer columns, every step
            mask, generator = self._noise
            x = x + ((torch.rand(x.shape, generator=generator) - 0.5) * mask).to(x.device, x.dtype)
        context = batch["theta"] if self.conditional else None
        if not self.scandal_alpha:
            nll = weighted_mean(-model.member_log_probs(x, context).mean(dim=0), batch["weights"])
            return nll, {"nll": nll.detach()}
        # one θ leaf per member, so that each member's score is ∇_θ of its own log p̂_k
        thetas = [batch["theta"].detach().requires_grad_(True) for _ in range(self.members)]
        nll, score = x.new_zeros(()), x.new_zeros(())
        with torch.enable_grad():  # the score term needs ∇_θ, in validation too
            for k, theta in enumerate(thetas):
                log_p = model.member_log_prob(k, x, theta)
                t_hat = torch.autograd.grad(log_p.sum(), theta, create_graph=training)[0]
                nll = nll + weighted_mean(-log_p, batch["weights"]) / self.members
                score = score + score_mse(t_hat, batch["t_xz"], batch["y"], batch["weights"],
                                          self.loss_scales.get("score")) / self.members
        return nll + self.scandal_alpha * score, {"nll": nll.detach(), "score": score.detach()}

    # -- evaluation -----------------------------------------------------------------------------------------------
    def log_prob(self, x: Any, theta: Any = None) -> Any:
        """log p̂(x | θ), (n,), float64, for x (n, d_x) and θ (p,) or (n, p) (none when unconditional)."""
        model = self._model
        if self.conditional:
            xt, th, as_numpy = self._inputs(x, theta)
            rows: list[Tensor | None] = list(th.split(EVAL_BATCH))
        else:
            xt, as_numpy = to_tensor(x, "x", self._x_shape)
            xt = xt.to(self.device)
            rows = [None] * len(xt.split(EVAL_BATCH))
        with torch.no_grad():
            out = torch.cat([model.log_prob(xb, tb) for xb, tb in zip(xt.split(EVAL_BATCH), rows)])
        return give_back(out.double(), as_numpy, place(x))

    def sample(self, theta: Any = None, n: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """n events x (n, d_x) from p̂(x | θ) at one θ (p,) (none when unconditional): a surrogate of the simulator.
        With a ``generator`` (on the network's device) the draw is reproducible."""
        with torch.no_grad():
            return self._model.draws(self._theta_rows(theta, 1)[0] if self.conditional else None, n, generator).cpu()

    def _reference(self, xt: Tensor) -> Tensor:
        assert self.space is not None
        ref = self.space.reference.to(torch.float32).to(self.device).reshape(1, -1).expand(xt.shape[0], -1)
        return self._model.log_prob(xt, ref)

    def _conditional_inputs(self, x: Any, theta: Any) -> tuple[Tensor, Tensor, bool]:
        """x (n, d) and θ (n, p) on the network's device, and whether x came as numpy (conditional densities only)."""
        self._require_conditional()
        return self._inputs(x, theta)

    def log_ratio(self, x: Any, theta: Any) -> Any:
        """log r̂(x | θ, θ_ref) = log p̂(x | θ) − log p̂(x | θ_ref), (n,); same kind as x."""
        xt, th, as_numpy = self._conditional_inputs(x, theta)
        with torch.no_grad():
            out = torch.cat([self._model.log_prob(xb, tb) - self._reference(xb)
                             for xb, tb in zip(xt.split(EVAL_BATCH), th.split(EVAL_BATCH))])
        return give_back(out, as_numpy, place(x))

    def log_ratio_of_theta(self, x: Any) -> Callable[[Tensor], Tensor]:
        """For fixed events x (n, d_x): θ (p,) → log r̂(x_i | θ) (n,), float64, differentiable in θ."""
        self._require_conditional()
        model = self._model
        xt, _ = to_tensor(x, "x", self._x_shape)
        back, xt = xt.device, xt.to(self.device)
        with torch.no_grad():
            reference = torch.cat([self._reference(xb) for xb in xt.split(EVAL_BATCH)])

        def log_ratio(theta: Tensor) -> Tensor:
            self.check_theta(theta)
            th = torch.as_tensor(theta).to(xt.device, torch.float32).reshape(1, -1).expand(xt.shape[0], -1)
            out = torch.cat([model.log_prob(xb, tb) for xb, tb in zip(xt.split(EVAL_BATCH), th.split(EVAL_BATCH))])
            return (out - reference).to(back, torch.float64)

        return log_ratio

    def score(self, x: Any, theta: Any) -> Any:
        """t̂(x | θ) = ∇_θ log p̂(x | θ), (n, p)."""
        model = self._model
        xt, th, as_numpy = self._conditional_inputs(x, theta)
        parts = []
        for xb, tb in zip(xt.split(EVAL_BATCH), th.split(EVAL_BATCH)):
            tb = tb.detach().requires_grad_(True)
            with torch.enable_grad():
                parts.append(torch.autograd.grad(model.log_prob(xb, tb).sum(), tb)[0])
        return give_back(torch.cat(parts), as_numpy, place(x))

    def _require_conditional(self) -> None:
        if not self.conditional:
            raise EstimatorError("an unconditional density p̂(x) has no ratio in θ: use log_prob(x)")
