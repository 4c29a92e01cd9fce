"""Inference: datasets, likelihood scans with Wilks intervals, and validation against exact likelihoods."""

from hepsbi.inference.datasets import Dataset, asimov_dataset, observed_dataset
from hepsbi.inference.scan import CONFIDENCE_LEVELS, ScanResult, likelihood_scan, wilks_threshold
from hepsbi.inference.validation import exact_log_ratio, log_ratio_comparison, log_ratio_mse

__all__ = [
    "CONFIDENCE_LEVELS",
    "Dataset",
    "ScanResult",
    "asimov_dataset",
    "exact_log_ratio",
    "likelihood_scan",
    "log_ratio_comparison",
    "log_ratio_mse",
    "observed_dataset",
    "wilks_threshold",
]
