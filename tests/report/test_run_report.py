"""The run report from plain results: results.json holds what the inference gave it, the plots exist, the summary
prints every likelihood — for a notebook analysis of the weighted toy (conftest), no spec involved."""

import json

import numpy as np
import pytest
from rich.console import Console

from hepsbi.estimators.training import TrainingHistory
from hepsbi.inference import NormSys, WeightedAnalysis, profile_scans
from hepsbi.report.run_report import write_run_report
from hepsbi.report.summary import print_summary


def test_report_of_a_notebook_analysis(weighted_toy, tmp_path):
    analysis = WeightedAnalysis(weighted_toy, [0.1], 20.0, systematics=[NormSys("lumi", 1.02, 0.98)])
    scans = analysis.scans({}, points=41, parton_level=True)
    bins = analysis.histogram_bins(["x"], [[0.0, 0.5, 1.0, 2.0, 30.0]])
    comparisons = {**scans, "histogram": analysis.binned_scan(*bins, points=41)}
    informations = analysis.fisher_information({}, parton_level=True, rate=True, histogram=(["x"], [[0.0, 0.5, 1.0, 2.0, 30.0]]))
    profiled = profile_scans(analysis.models({}, parton_level=True), weighted_toy.space, analysis.theta_true, points=9, around=scans)
    # the "learned" group: the truth again, under another label, as an estimator would give it
    learned = {"scans": {"ml": scans["truth"]}, "informations": {"ml": informations["truth"]}, "profiled": {}}
    others = {"scans": comparisons, "informations": informations, "profiled": profiled}
    history = TrainingHistory(train_loss=[1.0, 0.5], val_loss=[1.1, 0.6], learning_rate=[1e-3, 1e-3], best_epoch=2)
    results = write_run_report(tmp_path, weighted_toy.space, analysis.theta_true, [learned, others],
                               {"ml": {"method": "alices"}}, {"spec_name": "notebook"}, {"kind": "asimov"},
                               histories={"ml": history})
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(results))
    assert on_disk["estimator"] == "ml" and on_disk["mle"] == {"c": pytest.approx(scans["truth"].mle["c"], abs=0)}
    assert on_disk["estimators"]["ml"]["method"] == "alices"
    assert set(on_disk["comparisons"]) == {"truth", "histogram"}
    assert on_disk["comparisons"]["histogram"]["intervals"] == comparisons["histogram"].intervals
    truth_info = informations["truth"]
    assert on_disk["fisher_information"]["truth"]["errors"]["c"] == pytest.approx(np.sqrt(1 / truth_info[0, 0]), rel=1e-12)
    assert set(on_disk["profiled"]) == {"truth"} and "lumi" in on_disk["profiled"]["truth"]["nuisance_parameters"]
    # profiling the luminosity can only widen the interval
    lo, hi = on_disk["profiled"]["truth"]["intervals"]["c"]["68"]
    lo0, hi0 = on_disk["comparisons"]["truth"]["intervals"]["c"]["68"]
    assert hi - lo >= hi0 - lo0
    for plot in ("likelihood_scan.png", "training.png", "pulls.png", "correlation.png"):
        assert (tmp_path / "plots" / plot).stat().st_size > 1000
    # the fit's correlations: the POI and the luminosity's nuisance parameter, from the covariance of the fit
    corr = on_disk["profiled"]["truth"]["correlation"]
    matrix = np.asarray(corr["matrix"])
    assert corr["names"] == ["c", "lumi"] and np.allclose(np.diag(matrix), 1) and np.allclose(matrix, matrix.T)
    assert 0 < abs(matrix[0, 1]) < 1  # a normalisation systematic and c both move the rate
    console = Console(record=True, width=200)
    print_summary(on_disk, console)
    text = console.export_text()
    assert all(label in text for label in ("ml", "truth", "histogram", "truth (profiled)", "Fisher information"))
