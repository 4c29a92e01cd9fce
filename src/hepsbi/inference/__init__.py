"""Inference: datasets, likelihood scans with Wilks intervals, and validation against exact likelihoods."""

from hepsbi.inference.datasets import Dataset, asimov_dataset, observed_dataset
from hepsbi.inference.scan import (
    CONFIDENCE_LEVELS,
    ScanResult,
    binned_log_likelihood,
    likelihood_scan,
    scan_log_likelihood,
    unbinned_log_likelihood,
    wilks_threshold,
)
from hepsbi.inference.validation import exact_log_ratio, log_ratio_comparison, log_ratio_mse

__all__ = [
    "CONFIDENCE_LEVELS",
    "Dataset",
    "ScanResult",
    "asimov_dataset",
    "binned_log_likelihood",
    "exact_log_ratio",
    "likelihood_scan",
    "log_ratio_comparison",
    "log_ratio_mse",
    "observed_dataset",
    "scan_log_likelihood",
    "unbinned_log_likelihood",
    "wilks_threshold",
]
