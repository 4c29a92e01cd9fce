"""Neural estimators of likelihood ratios and scores."""

from hepsbi.estimators.ratio import METHODS, RatioEstimator
from hepsbi.estimators.score import ScoreEstimator
from hepsbi.estimators.training import TrainingConfig, TrainingHistory

__all__ = ["METHODS", "RatioEstimator", "ScoreEstimator", "TrainingConfig", "TrainingHistory"]
