"""Neural estimators of likelihood ratios and scores: the estimator contract, its kinds and their registry."""

from hepsbi.estimators.base import Estimator, LogRatioEstimator
from hepsbi.estimators.density import DensityEstimator
from hepsbi.estimators.ensemble import RatioEnsemble
from hepsbi.estimators.morphing import MorphingRatioEstimator
from hepsbi.estimators.posterior import PosteriorEstimator
from hepsbi.estimators.ratio import RatioEstimator
from hepsbi.estimators.registry import KINDS, METHODS, RATIO_METHODS, build_estimator, load_estimator
from hepsbi.estimators.score import ScoreEstimator
from hepsbi.estimators.selection import Selection, select_by_validation
from hepsbi.estimators.signed_mixture import SignedMixtureRatioEstimator
from hepsbi.estimators.training import TrainingConfig, TrainingHistory
from hepsbi.estimators.two_sample import TwoSampleRatio

__all__ = [
    "KINDS",
    "METHODS",
    "RATIO_METHODS",
    "DensityEstimator",
    "Estimator",
    "LogRatioEstimator",
    "MorphingRatioEstimator",
    "PosteriorEstimator",
    "RatioEnsemble",
    "RatioEstimator",
    "ScoreEstimator",
    "Selection",
    "SignedMixtureRatioEstimator",
    "TrainingConfig",
    "TrainingHistory",
    "TwoSampleRatio",
    "build_estimator",
    "load_estimator",
    "select_by_validation",
]
