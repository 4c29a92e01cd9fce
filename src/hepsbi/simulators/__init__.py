"""Simulators: the protocol, joint quantities by autodiff, and toy models with exact likelihoods."""

from hepsbi.simulators.gold import joint_log_ratio, joint_score
from hepsbi.simulators.protocol import Simulator, check_simulator, has_exact_likelihood
from hepsbi.simulators.toys import GaltonBoard, GaussianLatent, MultiParameterGaussian, TwoMoons

__all__ = [
    "Simulator",
    "check_simulator",
    "has_exact_likelihood",
    "joint_log_ratio",
    "joint_score",
    "GaussianLatent",
    "GaltonBoard",
    "MultiParameterGaussian",
    "TwoMoons",
]
