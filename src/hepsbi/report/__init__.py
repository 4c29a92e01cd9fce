"""Reporting: plots, results.json and the printed summary."""

from hepsbi.report.results import build_results, write_results
from hepsbi.report.summary import print_summary, summary_table

__all__ = ["build_results", "print_summary", "summary_table", "write_results"]
