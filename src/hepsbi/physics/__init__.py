"""Particle physics: Drell–Yan with contact interactions (matrix elements, morphing, Pythia 8, detector)."""

from hepsbi.physics.detector import FastDetector
from hepsbi.physics.drell_yan import DEFAULT_OBSERVABLES, DrellYanContact
from hepsbi.physics.matrix_elements import (
    HELICITIES,
    dsigma_dt,
    eta_lambda_to_theta,
    me_weight,
    wilson_from_eta,
)
from hepsbi.physics.morphing import QuadraticMorphing
from hepsbi.physics.pythia import MassSlice, PythiaRun
from hepsbi.physics.standard_model import SMInputs

__all__ = [
    "DEFAULT_OBSERVABLES",
    "DrellYanContact",
    "FastDetector",
    "HELICITIES",
    "MassSlice",
    "PythiaRun",
    "QuadraticMorphing",
    "SMInputs",
    "dsigma_dt",
    "eta_lambda_to_theta",
    "me_weight",
    "wilson_from_eta",
]
