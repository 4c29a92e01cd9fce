"""Particle physics: Drell–Yan with contact interactions (matrix elements, morphing, Pythia 8, detector), and events
from other generators (LHE and HepMC files, showered or not; LHE files with reweighting benchmarks as a simulator)."""

from hepsbi.physics.detector import FastDetector
from hepsbi.physics.drell_yan import DEFAULT_OBSERVABLES, DrellYanContact
from hepsbi.physics.hepmc_sample import HepMCSample
from hepsbi.physics.lhe_model import LHEMorphed
from hepsbi.physics.lhe_sample import LHESample
from hepsbi.physics.matrix_elements import (
    HELICITIES,
    dsigma_dt,
    eta_lambda_to_theta,
    me_weight,
    wilson_from_eta,
)
from hepsbi.physics.morphing import QuadraticMorphing
from hepsbi.physics.pythia import LHEShower, MassSlice, PythiaBatches, PythiaRun
from hepsbi.physics.standard_model import SMInputs

__all__ = [
    "DEFAULT_OBSERVABLES",
    "DrellYanContact",
    "FastDetector",
    "HELICITIES",
    "HepMCSample",
    "LHEMorphed",
    "LHESample",
    "LHEShower",
    "MassSlice",
    "PythiaBatches",
    "PythiaRun",
    "QuadraticMorphing",
    "SMInputs",
    "dsigma_dt",
    "eta_lambda_to_theta",
    "me_weight",
    "wilson_from_eta",
]
