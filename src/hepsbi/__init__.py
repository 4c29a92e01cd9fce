"""hepsbi: neural simulation-based inference for particle physics."""

from hepsbi import diagnostics  # noqa: E402
from hepsbi._version import __version__
from hepsbi.data import TrainingData  # noqa: E402
from hepsbi.estimators import (  # noqa: E402
    DensityEstimator,
    PosteriorEstimator,
    RatioEstimator,
    ScoreEstimator,
    TrainingConfig,
    TwoSampleRatio,
)
from hepsbi.space import Parameter, ParameterSpace  # noqa: E402

__all__ = [
    "__version__",
    "DensityEstimator",
    "Parameter",
    "ParameterSpace",
    "PosteriorEstimator",
    "RatioEstimator",
    "ScoreEstimator",
    "TrainingConfig",
    "TrainingData",
    "TwoSampleRatio",
    "diagnostics",
]
