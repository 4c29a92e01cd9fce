r"""Density ratios between two weighted samples, negative weights included: r(x) = p₁(x) / p₀(x).

The building block of reweighting (an LO sample to NLO, simulation to data) and of unfolding: no θ, two samples
(x₀, w₀) from the denominator p₀ and (x₁, w₁) from the numerator p₁, each density normalised to unit total weight.
When p₁ is a quasiprobability (an NLO sample: negative where subtraction terms win) so is r, and the classic
classifier odds s/(1 − s) cannot follow it. The methods:

- ``revert``: one network trained with the REVERT loss (:func:`~hepsbi.estimators.losses.revert`),
  r̂ = 2 sinh ĝ, either sign; needs p₀ ≥ 0 (its events may still carry negative weights).
- ``smm``: the signed mixture model. Sample 1's positive- and negative-weight events have non-negative densities
  p₊ and p₋ (from |w|), and p₁ = c p₊ − (c − 1) p₋ with c = Σw₊ / Σw. Two ordinary classifiers (cross-entropy)
  learn r± = p± / p₀ and r̂ = c r̂₊ − (c − 1) r̂₋ (Drnevich, Jiggins, Katzy, Cranmer, arXiv:2410.10216).
- ``smm-c``: as ``smm``, with c then fitted on the training data by minimising the REVERT risk of r̂(c)
  (the sub-classifiers fixed), instead of taken from the weight sums.
- ``bce``: one classifier trained by cross-entropy on the signed weights, r̂ = e^f — the baseline that cannot be
  negative (its risk is unbounded below where p₁ < 0: there r̂ → 0).

Both samples are balanced to the same total weight, so r̂ is the ratio of the normalised densities; the ratio of
the rates is Σw₁ / Σw₀ (:attr:`TwoSampleRatio.rate_ratio`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hepsbi.errors import EstimatorError
from hepsbi.estimators._arrays import EVAL_BATCH, give_back, place, to_tensor
from hepsbi.estimators.base import layer_widths, training_config
from hepsbi.estimators.devices import resolve_device
from hepsbi.estimators.losses import carl, revert
from hepsbi.estimators.networks import MLP, Standardize
from hepsbi.estimators.persistence import load_weights, read_metadata, save_estimator
from hepsbi.estimators.training import TrainingConfig, TrainingHistory, train

__all__ = ["TWO_SAMPLE_METHODS", "LEARNING_RATE", "TwoSampleRatio", "TwoSampleModel"]

#: the methods of :class:`TwoSampleRatio` (module docstring)
TWO_SAMPLE_METHODS = ("revert", "smm", "smm-c", "bce")
#: the default learning rate of TwoSampleRatio (AdamW)
LEARNING_RATE = 5e-4
#: logits are clamped to ±this before exp / sinh (float32 overflow), as for the other ratio losses
_CLAMP = 30.0


class TwoSampleModel(nn.Module):
    r"""r̂(x) from one network (``revert``: 2 sinh g; ``bce``: e^f) or two (``smm``: c e^{f₊} − (c − 1) e^{f₋}) on
    standardised x; holds the input scaling and c as buffers, so a saved model needs nothing else.

    Arguments:
        dim: the number of observables d.  method: one of :data:`TWO_SAMPLE_METHODS`.  hidden: hidden layer widths.
    """

    c: Tensor

    def __init__(self, dim: int, method: str, hidden: Sequence[int] = (64, 64, 64)):
        super().__init__()
        self.method = method
        self.x_scale = Standardize(dim)
        self.nets = nn.ModuleList([MLP(dim, 1, hidden) for _ in range(2 if method.startswith("smm") else 1)])
        self.register_buffer("c", torch.ones((), dtype=torch.float64))

    def logits(self, x: Tensor, k: int = 0) -> Tensor:
        """Output of network ``k`` for x (n, d): (n,)."""
        return self.nets[k](self.x_scale(x)).squeeze(1)

    def odds(self, x: Tensor, k: int) -> Tensor:
        """e^{f_k(x)} of classifier network ``k``, (n,), float64 (the logit clamped against overflow)."""
        return torch.exp(self.logits(x, k).double().clamp(-_CLAMP, _CLAMP))

    def forward(self, x: Tensor) -> Tensor:
        """r̂(x), (n,), float64."""
        if self.method == "revert":
            return 2 * torch.sinh(self.logits(x, 0).double().clamp(-_CLAMP, _CLAMP))
        if self.method == "bce":
            return self.odds(x, 0)
        return self.c * self.odds(x, 0) - (self.c - 1) * self.odds(x, 1)


class TwoSampleRatio:
    r"""Learns the signed ratio r(x) = p₁(x)/p₀(x) of two weighted samples (module docstring).

    Arguments:
        method: ``revert`` (default), ``smm``, ``smm-c`` or ``bce``.
        hidden: hidden layer widths of each network.
        config: a :class:`~hepsbi.estimators.training.TrainingConfig`; keyword ``options`` override its fields
            (``epochs=30``, ``batch_size=1024``, ``device="cuda"``, ``seed=1``). Without a ``config``, the learning
            rate is :data:`LEARNING_RATE` (5e-4, not the 2e-3 of the θ-parametrised estimators: signed weights make
            the gradient noisier, and on the camel example at 1e5 events REVERT's sign recovery rises from 0.953 to
            0.97–0.98 with it; ``benchmarks/negative_weights.py``).

    Attributes:
        c: the mixture coefficient of the ``smm`` methods (1 for the others).
        rate_ratio: Σw₁ / Σw₀ of the training samples.
        histories: the training curve of each network (``ratio``; ``positive`` and ``negative`` for ``smm``).

    Example:
        >>> from hepsbi.simulators.signed import camel
        >>> source, target = camel()
        >>> gen = torch.Generator().manual_seed(0)
        >>> (x0, w0), (x1, w1) = source.sample(2000, gen), target.sample(2000, gen)
        >>> est = TwoSampleRatio("revert", epochs=2, progress=False).fit(x0, w0, x1, w1)
        >>> est.ratio(x0[:3]).shape
        torch.Size([3])
    """

    kind = "TwoSampleRatio"

    def __init__(self, method: str = "revert", hidden: Sequence[int] = (64, 64, 64), config: TrainingConfig | None = None,
                 **options: Any):
        if method not in TWO_SAMPLE_METHODS:
            raise EstimatorError(f"unknown two-sample method {method!r}; choose one of {list(TWO_SAMPLE_METHODS)}")
        self.method = method
        self.hidden = layer_widths(hidden)
        if config is None:
            options = {"learning_rate": LEARNING_RATE, **options}
        self.config = training_config(config, options)
        self.model: TwoSampleModel | None = None
        self.rate_ratio = float("nan")
        self.histories: dict[str, TrainingHistory] = {}

    def __repr__(self) -> str:
        state = "trained" if self.model is not None else "untrained"
        return f"TwoSampleRatio(method={self.method!r}, hidden={list(self.hidden)}, {state}, c={self.c:.4g})"

    # -- training -------------------------------------------------------------------------------------------------
    def fit(self, x0: Any, w0: Any, x1: Any, w1: Any) -> TwoSampleRatio:
        r"""Train on the denominator sample (x₀ (n₀, d), w₀ (n₀,)) and the numerator sample (x₁ (n₁, d), w₁ (n₁,));
        weights may be None (all 1) and negative. Returns self."""
        device = resolve_device(self.config.device, "training option device")
        x0t, w0t = _sample(x0, w0, "x0", "w0")
        x1t, w1t = _sample(x1, w1, "x1", "w1")
        if x0t.shape[1] != x1t.shape[1]:
            raise EstimatorError(f"x0 has {x0t.shape[1]} columns, x1 has {x1t.shape[1]}: the samples must share observables")
        self.rate_ratio = float(w1t.sum() / w0t.sum())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            model = TwoSampleModel(x0t.shape[1], self.method, self.hidden)
        model.x_scale.fit(torch.cat([x0t, x1t]).float())
        self.model = model.to(device)
        self.histories = {}
        if not self.method.startswith("smm"):
            loss = revert if self.method == "revert" else carl
            self.histories["ratio"] = self._train(0, _balanced(x0t, w0t, x1t, w1t), loss, self.method)
        else:
            positive, negative = w1t > 0, w1t < 0
            self.model.c.fill_(float(w1t[positive].sum() / w1t.sum()))
            if not bool(negative.any()):  # no negative weights: the mixture is the plain classifier
                self.histories["positive"] = self._train(0, _balanced(x0t, w0t, x1t, w1t), carl, "smm: p+")
            else:
                for k, (name, part) in enumerate((("positive", positive), ("negative", negative))):
                    tensors = _balanced(x0t, w0t, x1t[part], w1t[part].abs())
                    self.histories[name] = self._train(k, tensors, carl, f"smm: p{'+-'[k]}")
                if self.method == "smm-c":
                    self.model.c.fill_(self._fitted_c(x0t, w0t, x1t, w1t))
        self.model.eval()
        return self

    def _train(self, k: int, tensors: dict[str, Tensor], loss: Any, description: str) -> TrainingHistory:
        model = self._require_model()

        def batch_loss(batch: dict[str, Tensor], training: bool) -> tuple[Tensor, dict[str, Tensor]]:
            value = loss(model.logits(batch["x"], k), batch["y"], batch["weights"])
            return value, {}

        return train(model.nets[k], batch_loss, tensors, self.config, description=description)

    def _fitted_c(self, x0: Tensor, w0: Tensor, x1: Tensor, w1: Tensor) -> float:
        """c minimising the REVERT risk of r̂(c) = c r̂₊ − (c − 1) r̂₋ on the training samples (bounded search)."""
        from scipy.optimize import minimize_scalar

        tensors = _balanced(x0, w0, x1, w1)
        model = self._require_model()
        with torch.no_grad():
            x = tensors["x"].to(self.device)
            plus = torch.cat([model.odds(b, 0) for b in x.split(EVAL_BATCH)])
            minus = torch.cat([model.odds(b, 1) for b in x.split(EVAL_BATCH)])
        y, w = tensors["y"].double().to(self.device), tensors["weights"].double().to(self.device)

        def risk(c: float) -> float:
            g = torch.asinh((c * plus - (c - 1) * minus) / 2)
            return float(revert(g, y, w))

        start = self.c
        found = minimize_scalar(risk, bounds=(1.0, max(4.0 * start, start + 5.0)), method="bounded",
                                options={"xatol": 1e-4 * start})
        return float(found.x)

    # -- evaluation -----------------------------------------------------------------------------------------------
    @property
    def c(self) -> float:
        """The mixture coefficient of the ``smm`` methods (1 for the others and before training)."""
        return float(self.model.c) if self.model is not None else 1.0

    @property
    def device(self) -> torch.device:
        """Where the networks are."""
        return self.model.c.device if self.model is not None else torch.device("cpu")

    def to(self, device: str | torch.device) -> TwoSampleRatio:
        """Move the networks to ``device`` (cpu, cuda, cuda:N, auto); returns self."""
        self._require_model().to(resolve_device(device))
        return self

    def _require_model(self) -> TwoSampleModel:
        if self.model is None:
            raise EstimatorError("the two-sample ratio is not trained: call fit() or load() first")
        return self.model

    def ratio(self, x: Any) -> Any:
        """r̂(x) = p̂₁(x)/p̂₀(x) of the normalised densities, signed: x (n, d) → (n,), float64; same kind as x."""
        model = self._require_model()
        xt, as_numpy = to_tensor(x, "x", model.x_scale.mean.shape[0])
        with torch.no_grad():
            out = torch.cat([model(b) for b in xt.to(self.device).split(EVAL_BATCH)])
        return give_back(out, as_numpy, place(x))

    # -- files ----------------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``weights.pt`` and ``estimator.json`` into directory ``path``."""
        model = self._require_model()
        meta = {"kind": self.kind, "method": self.method, "hidden": list(self.hidden), "dim": int(model.x_scale.mean.shape[0]),
                "c": self.c, "rate_ratio": self.rate_ratio, "training": self.config.to_dict(),
                "histories": {k: h.to_dict() for k, h in self.histories.items()}}
        return save_estimator(path, model, meta)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> TwoSampleRatio:
        """A ratio saved by :meth:`save`, its networks on ``device``."""
        meta = read_metadata(path, cls.kind)
        est = cls(meta["method"], meta["hidden"], TrainingConfig(**meta["training"]))
        est.model = TwoSampleModel(int(meta["dim"]), est.method, est.hidden)
        load_weights(path, est.model)
        est.model.eval()
        est.rate_ratio = float(meta["rate_ratio"])  # c is a buffer of the weights
        est.histories = {k: TrainingHistory(**h) for k, h in meta.get("histories", {}).items()}
        return est.to(device)


def _sample(x: Any, w: Any, x_name: str, w_name: str) -> tuple[Tensor, Tensor]:
    """x (n, d) (a 1-D x is one column) and w (n,) as float64 tensors, checked: n > 1, finite, a positive total."""
    xt = torch.as_tensor(x if isinstance(x, Tensor) else np.asarray(x), dtype=torch.float64)
    xt = xt.reshape(-1, 1) if xt.dim() == 1 else xt
    if xt.dim() != 2:
        raise EstimatorError(f"{x_name} must have shape (n, d), got {tuple(xt.shape)}")
    wt = torch.ones(xt.shape[0], dtype=torch.float64) if w is None else torch.as_tensor(w, dtype=torch.float64).reshape(-1)
    if wt.shape[0] != xt.shape[0]:
        raise EstimatorError(f"{w_name} has {wt.shape[0]} weights for {xt.shape[0]} events in {x_name}")
    if xt.shape[0] < 2:
        raise EstimatorError(f"{x_name} needs at least 2 events (got {xt.shape[0]})")
    if not bool(torch.isfinite(xt).all()) or not bool(torch.isfinite(wt).all()):
        raise EstimatorError(f"{x_name} or {w_name} holds NaN or infinite values")
    if not float(wt.sum()) > 0:
        raise EstimatorError(f"the weights {w_name} must have a positive sum (got {float(wt.sum()):g})")
    return xt, wt


def _balanced(x0: Tensor, w0: Tensor, x1: Tensor, w1: Tensor) -> dict[str, Tensor]:
    """Both samples as one training set (y = 0, 1), each scaled to the same total weight, mean weight 1 (signs
    kept): the classifiers then see equal priors and r̂ is the ratio of the normalised densities."""
    n = x0.shape[0] + x1.shape[0]
    weights = torch.cat([w0 * (n / 2) / w0.sum(), w1 * (n / 2) / w1.sum()])
    y = torch.cat([torch.zeros(x0.shape[0]), torch.ones(x1.shape[0])])
    return {"x": torch.cat([x0, x1]).float(), "y": y.float(), "weights": weights.float()}
