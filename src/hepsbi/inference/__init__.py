"""Inference: the analysis layer (analysis.py), per-event log ratios (the door from estimators), datasets, likelihoods (unbinned, binned, templates), scans, profile fits with nuisance
parameters (iminuit), hypothesis tests, toys and coverage, Fisher information, pyhf workspaces and limits,
and validation against exact likelihoods."""

from hepsbi.inference.analysis import (
    PB_PER_FB,
    Tilt,
    WeightedAnalysis,
    WeightVariation,
    fisher_informations,
    profile_scans,
    scan_likelihoods,
    simulator_toys,
)
from hepsbi.inference.asymptotics import asymptotic_cls, likelihood_test_statistic
from hepsbi.inference.datasets import (
    Dataset,
    asimov_dataset,
    asimov_expected_events,
    observed_dataset,
    reference_weights,
    weighted_asimov_dataset,
)
from hepsbi.inference.fisher import (
    binned_information,
    information_from_scores,
    kept_information,
    model_information,
    per_event_scores,
    profiled_information,
    rate_information,
)
from hepsbi.inference.hypotest import Hypotester, HypotestResult, hypotests, upper_limit
from hepsbi.inference.nuisance import NormSys, ShapeSys, code4, gaussian_constraint
from hepsbi.inference.profile import FitResult, ProfileFit, hessian, minimize, profile_fit, profile_scan
from hepsbi.inference.pseudo_experiments import (
    CoverageResult,
    neyman_interval,
    unbinned_coverage,
    unbinned_toys,
)
from hepsbi.inference.ratios import (
    LogRatioOfTheta,
    PerEventLogRatio,
    exact_log_ratio,
    latent_log_ratio,
    normalised_log_ratio,
)
from hepsbi.inference.sampling import LikelihoodPosterior
from hepsbi.inference.scan import (
    CONFIDENCE_LEVELS,
    ScanResult,
    binned_log_likelihood,
    likelihood_scan,
    scan_log_likelihood,
    unbinned_log_likelihood,
    wilks_threshold,
)
from hepsbi.inference.templates import bin_index_edges, bin_index_quantiles, template_log_likelihood
from hepsbi.inference.unbinned import LinearRatio, UnbinnedModel
from hepsbi.inference.validation import log_ratio_comparison, log_ratio_mse
from hepsbi.inference.workspace import Sample, histogram_workspace, write_workspace

__all__ = [
    "CONFIDENCE_LEVELS",
    "CoverageResult",
    "HypotestResult",
    "LikelihoodPosterior",
    "LinearRatio",
    "Sample",
    "binned_information",
    "hessian",
    "histogram_workspace",
    "information_from_scores",
    "kept_information",
    "model_information",
    "neyman_interval",
    "per_event_scores",
    "profiled_information",
    "rate_information",
    "unbinned_coverage",
    "unbinned_toys",
    "upper_limit",
    "hypotests",
    "Hypotester",
    "write_workspace",
    "FitResult",
    "NormSys",
    "ShapeSys",
    "UnbinnedModel",
    "code4",
    "gaussian_constraint",
    "minimize",
    "profile_fit",
    "ProfileFit",
    "profile_scan",
    "Dataset",
    "ScanResult",
    "asimov_dataset",
    "asymptotic_cls",
    "asimov_expected_events",
    "bin_index_edges",
    "bin_index_quantiles",
    "binned_log_likelihood",
    "exact_log_ratio",
    "latent_log_ratio",
    "LogRatioOfTheta",
    "PerEventLogRatio",
    "PB_PER_FB",
    "Tilt",
    "WeightVariation",
    "WeightedAnalysis",
    "fisher_informations",
    "profile_scans",
    "scan_likelihoods",
    "simulator_toys",
    "likelihood_scan",
    "log_ratio_comparison",
    "log_ratio_mse",
    "normalised_log_ratio",
    "observed_dataset",
    "reference_weights",
    "scan_log_likelihood",
    "template_log_likelihood",
    "likelihood_test_statistic",
    "unbinned_log_likelihood",
    "weighted_asimov_dataset",
    "wilks_threshold",
]
