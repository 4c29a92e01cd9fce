r"""Trained estimators as portable files: ONNX (any runtime, any language) and ``torch.export`` programs.

What is exported is the estimator's function, not its training state:

* a likelihood-ratio estimator (``RatioEstimator``, ``MorphingRatioEstimator``): inputs ``x`` (n, \*x_shape) and
  ``theta`` (n, p), float32; output ``log_r`` (n,) = log r̂(x | θ, θ_ref), the input standardisation inside;
* SALLY (``ScoreEstimator``): input ``x``; output ``score`` (n, p) = t̂(x | θ_ref).

Beside each file a JSON sidecar (same name, ``.json``) says what it computes: kind, method, the inputs and
output with their shapes, the observables in column order, the parameter space (names, ranges, θ_ref), the θ
range of the training data and the hepsbi version — what a reinterpretation needs to use the learned likelihood
without hepsbi. :func:`check_onnx` evaluates an exported file with onnxruntime against the estimator in torch.

TorchScript (``torch.jit``) is deprecated in the torch hepsbi pins (2.13 warns on ``torch.jit.script``); its
successor ``torch.export`` writes ``.pt2`` programs that ``torch.export.load`` runs without hepsbi.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hepsbi._version import __version__
from hepsbi.errors import EstimatorError
from hepsbi.estimators.ensemble import RatioEnsemble
from hepsbi.estimators.losses import floored_log, signed_log_ratio
from hepsbi.files import atomic_path, write_json

__all__ = ["check_onnx", "export_onnx", "export_program", "exported_function"]


class _LogRatio(nn.Module):
    """(x, θ) → log r̂ of a :class:`~hepsbi.estimators.networks.RatioModel` (of a signed ratio's output, where
    positive: :func:`~hepsbi.estimators.losses.signed_log_ratio`)."""

    def __init__(self, model: nn.Module, signed: bool = False):
        super().__init__()
        self.model = model
        self.signed = signed

    def forward(self, x: Tensor, theta: Tensor) -> Tensor:
        f = self.model(x, theta)
        return signed_log_ratio(f) if self.signed else f


class _SignedMixtureLogRatio(nn.Module):
    """(x, θ) → log r̂ of a :class:`~hepsbi.estimators.signed_mixture.SignedMixtureModel`, self-normalised per row
    (each row's θ against all the reference events: n × 1024 network evaluations), floored where r̂ ≤ 0."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, theta: Tensor) -> Tensor:
        return floored_log(self.model(x, theta)).float()


class _DensityLogRatio(nn.Module):
    """(x, θ) → log p̂(x | θ) − log p̂(x | θ_ref) of a :class:`~hepsbi.estimators.density.DensityModel`."""

    def __init__(self, model: nn.Module, reference: Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("reference", reference.to(torch.float32).reshape(1, -1))

    def forward(self, x: Tensor, theta: Tensor) -> Tensor:
        reference = self.reference.expand(x.shape[0], -1)  # type: ignore[operator]
        return self.model.log_prob(x, theta) - self.model.log_prob(x, reference)  # type: ignore[operator]


class _MorphingLogRatio(nn.Module):
    r"""(x, θ) → log(ũᵀ A(x) ũ) − log(ũᵀ Ā ũ) of a morphing-aware model, ũ = (1, (θ − θ_ref)/s), in float64 inside."""

    def __init__(self, model: Any):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, theta: Tensor) -> Tensor:
        form = self.model(x).double()
        t = (theta.double() - self.model.reference.double()) / self.model.theta_scale.double()
        u = torch.cat([torch.ones_like(t[:, :1]), t], dim=1)
        value = torch.einsum("ni,nij,nj->n", u, form, u)
        norm = torch.einsum("ni,ij,nj->n", u, self.model.mean_form.double(), u)
        return (torch.log(value) - torch.log(norm)).float()


class _Score(nn.Module):
    """x → t̂(x) of a :class:`~hepsbi.estimators.networks.ScoreModel`."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class _Mean(nn.Module):
    """(x, θ) → the mean of several members' log r̂ (a :class:`~hepsbi.estimators.ensemble.RatioEnsemble`)."""

    def __init__(self, parts: list[nn.Module]):
        super().__init__()
        self.parts = nn.ModuleList(parts)
        self.model = parts[0].model  # its input scaling, for check_onnx

    def forward(self, x: Tensor, theta: Tensor) -> Tensor:
        return torch.stack([part(x, theta) for part in self.parts]).mean(dim=0)


def exported_function(estimator: Any) -> tuple[nn.Module, dict[str, list[Any]], str]:
    """The module an export writes for a trained ``estimator`` (an ensemble: the mean of its members' log r̂, as
    :class:`~hepsbi.estimators.ensemble.RatioEnsemble` gives it), its inputs (name → shape, "n" the batch axis) and
    the name of its output."""
    from hepsbi.estimators.density import DensityEstimator
    from hepsbi.estimators.morphing import MorphingRatioEstimator
    from hepsbi.estimators.ratio import RatioEstimator
    from hepsbi.estimators.score import ScoreEstimator
    from hepsbi.estimators.signed_mixture import SignedMixtureRatioEstimator

    if isinstance(estimator, RatioEnsemble):
        parts = [exported_function(member) for member in estimator.members]
        return _Mean([p[0] for p in parts]).eval(), parts[0][1], parts[0][2]
    if getattr(estimator, "model", None) is None or estimator.space is None:
        raise EstimatorError("export: the estimator is not trained (fit() or load() it first)")
    model = copy.deepcopy(estimator._require_model()).cpu()  # exported from the CPU, wherever it trained
    x_shape = ["n", *estimator._x_shape]
    theta_shape = ["n", estimator.space.dim]
    if isinstance(estimator, MorphingRatioEstimator):
        return _MorphingLogRatio(model).eval(), {"x": x_shape, "theta": theta_shape}, "log_r"
    if isinstance(estimator, RatioEstimator):
        return _LogRatio(model, estimator.signed).eval(), {"x": x_shape, "theta": theta_shape}, "log_r"
    if isinstance(estimator, DensityEstimator) and estimator.conditional:
        return (_DensityLogRatio(model, estimator.space.reference).eval(), {"x": x_shape, "theta": theta_shape},
                "log_r")
    if isinstance(estimator, SignedMixtureRatioEstimator):
        return _SignedMixtureLogRatio(model).eval(), {"x": x_shape, "theta": theta_shape}, "log_r"
    if isinstance(estimator, ScoreEstimator):
        return _Score(model).eval(), {"x": x_shape}, "score"
    raise EstimatorError(f"export: no exported form for a {type(estimator).__name__}")


def _examples(inputs: dict[str, list[Any]], n: int = 4) -> tuple[Tensor, ...]:
    gen = torch.Generator().manual_seed(0)
    return tuple(torch.rand([n if d == "n" else d for d in shape], generator=gen) for shape in inputs.values())


def _sidecar(estimator: Any, inputs: dict[str, list[Any]], output: str, file: Path, fmt: str) -> dict[str, Any]:
    if isinstance(estimator, RatioEnsemble):  # described by its first member, the mean of all of them exported
        return _sidecar(estimator.members[0], inputs, output, file, fmt) | {"ensemble": len(estimator)}
    space = estimator.space
    computes = {"log_r": "log r̂(x | θ, θ_ref), the learned log-likelihood ratio per event",
                "score": "t̂(x | θ_ref) = ∇_θ log p̂(x | θ) at θ_ref, per event"}[output]
    return {
        "file": file.name, "format": fmt, "kind": estimator.kind, "method": getattr(estimator, "method", estimator.kind),
        "computes": computes, "inputs": {k: {"shape": v, "dtype": "float32"} for k, v in inputs.items()},
        "output": {"name": output, "shape": ["n"] if output == "log_r" else ["n", space.dim]},
        "observables": list(estimator.features), "parameter_space": space.to_dict(),
        "reference": space.reference.tolist(),
        "theta_range": None if estimator.theta_range is None else [list(v) for v in estimator.theta_range],
        "hepsbi_version": __version__,
    }


def export_onnx(estimator: Any, path: str | os.PathLike[str]) -> Path:
    """Write the estimator's function (module docstring) as ONNX to ``path`` (atomically) with a batch axis of any
    size, and its sidecar ``path.with_suffix(".json")``. Needs ``onnx`` and ``onnxscript`` (``pip install
    'hepsbi[export]'``). Returns the path."""
    try:
        import onnxscript  # noqa: F401  (torch's exporter needs it)
    except ImportError:
        raise EstimatorError("export to ONNX needs onnx and onnxscript: pip install 'hepsbi[export]'") from None
    module, inputs, output = exported_function(estimator)
    path = Path(path)
    batch = torch.export.Dim("n", min=1)
    dynamic = tuple({0: batch} for _ in inputs)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its notes on operators of packages that are not installed (torchvision)
    try:
        with atomic_path(path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", (UserWarning, FutureWarning))  # the exporter's notes on its internals
            program = torch.onnx.export(module, _examples(inputs), input_names=list(inputs), output_names=[output],
                                        dynamic_shapes=dynamic, verbose=False)
            assert program is not None
            program.save(str(tmp))
    finally:
        quiet.setLevel(level)
    write_json(path.with_suffix(".json"), _sidecar(estimator, inputs, output, path, "onnx"))
    return path


def export_program(estimator: Any, path: str | os.PathLike[str]) -> Path:
    """Write the estimator's function as a ``torch.export`` program (``.pt2``, loaded by ``torch.export.load``)
    with a batch axis of any size, and its sidecar. Returns the path."""
    module, inputs, output = exported_function(estimator)
    path = Path(path)
    batch = torch.export.Dim("n", min=1)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", (UserWarning, FutureWarning))
        program = torch.export.export(module, _examples(inputs), dynamic_shapes=tuple({0: batch} for _ in inputs))
        torch.export.save(program, str(tmp))
    write_json(path.with_suffix(".json"), _sidecar(estimator, inputs, output, path, "torch.export"))
    return path


def check_onnx(estimator: Any, path: str | os.PathLike[str], n: int = 1000, seed: int = 0) -> float:
    r"""The largest difference of the exported output from torch's on ``n`` random inputs (x standard normal in
    the training scaling, θ uniform in the training range), evaluated with onnxruntime, relative to the output's
    scale: max |ONNX − torch| / max(1, max |torch|) (float32 arithmetic: ~1e-7 per unit of output)."""
    try:
        import onnxruntime
    except ImportError:
        raise EstimatorError("checking an ONNX export needs onnxruntime: pip install 'hepsbi[export]'") from None
    module, inputs, _ = exported_function(estimator)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn([n, *inputs["x"][1:]], generator=gen)
    scale = getattr(module.model, "x_scale", None)
    if scale is not None:
        x = x * scale.std + scale.mean
    feeds: dict[str, Tensor] = {"x": x}
    if "theta" in inputs:
        first: Any = estimator.members[0] if isinstance(estimator, RatioEnsemble) else estimator
        low, high = (torch.tensor(v, dtype=torch.float32) for v in (first.theta_range or
                                                                       (first.space.low, first.space.high)))
        feeds["theta"] = low + (high - low) * torch.rand(n, len(low), generator=gen)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {k: v.numpy() for k, v in feeds.items()})[0]
    with torch.no_grad():
        want = module(*feeds.values()).numpy()
    return float(np.max(np.abs(got - want)) / max(1.0, float(np.max(np.abs(want)))))


def read_sidecar(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The sidecar JSON of an exported file."""
    return json.loads(Path(path).with_suffix(".json").read_text())
