"""The CLI end to end on a tiny budget, and its error path."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from hepsbi.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def tiny_spec(tmp_path: Path, simulator: str, truth: dict, estimators: list[dict]) -> Path:
    spec = {
        "name": f"tiny-{simulator}",
        "simulator": {"name": simulator},
        "data": {"n_samples": 1500, "seed": 1},
        "training": {"estimators": [{**e, "epochs": 4} for e in estimators]},
        "inference": {"theta_true": truth, "n_events": 200, "n_mc": 2000, "grid_points": 21},
        "report": {"validation_events": 200},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize(
    ("simulator", "truth", "estimators"),
    [
        ("gaussian", {"theta": 0.3}, [{"method": "alices"}, {"method": "carl", "label": "plain-carl"}]),
        ("multi_gaussian", {"theta1": 0.3, "theta2": -0.2}, [{"method": "alice", "ensemble": 3}]),
    ],
)
def test_run_end_to_end(tmp_path, simulator, truth, estimators):
    spec = tiny_spec(tmp_path, simulator, truth, estimators)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "hepsbi results" in result.output
    results = json.loads((out / "results.json").read_text())
    names = list(truth)
    assert results["parameters"] == names and results["truth"] == truth
    assert set(results["mle"]) == set(names)
    for name in names:
        lo68, hi68 = results["intervals"][name]["68"]
        lo95, hi95 = results["intervals"][name]["95"]
        assert lo95 <= lo68 <= results["mle"][name] <= hi68 <= hi95
    labels = [e.get("label", e["method"]) for e in estimators]
    assert list(results["estimators"]) == labels and results["estimator"] == labels[0]
    # the diagnostics ran (hepsbi.report.diagnostics): what they found is listed, and printed above the tables
    assert all(set(w) == {"code", "likelihood", "message"} for w in results["warnings"])
    assert all(w["message"] in " ".join(result.output.split()) for w in results["warnings"])
    for label in labels:  # the θ the estimator saw, which the extrapolation check compares the scan with
        trained = results["estimators"][label]["training"]["theta_range"]
        assert set(trained) == set(names) and all(lo < hi for lo, hi in trained.values())
    # the MSE in results.json is the held-out comparison with the exact likelihood, recomputed here from the saved
    # models (members averaged) on the report's test points and seed
    import torch

    from hepsbi.estimators import RatioEnsemble, RatioEstimator
    from hepsbi.inference import log_ratio_mse
    from hepsbi.simulators.registry import build_simulator

    sim = build_simulator(simulator)
    points = sim.space.mesh(sim.space.grid(11 if sim.space.dim == 1 else 5))
    for e, label in zip(estimators, labels):
        members = [RatioEstimator.load(out / "models" / label)]
        members += [RatioEstimator.load(out / "models" / label / f"member{m}") for m in range(1, e.get("ensemble", 1))]
        est = members[0] if len(members) == 1 else RatioEnsemble(members)
        mse = log_ratio_mse(est.log_ratio_of_theta, sim, points, n_events=200, seed=1 + 1_000_003)
        assert results["estimators"][label]["log_ratio_mse"] == pytest.approx(mse, rel=1e-9)
        # 4 epochs on 1500 events are rough, but must beat knowing nothing (log r̂ ≡ 0)
        nothing = log_ratio_mse(lambda x: lambda th: torch.zeros(len(x), dtype=torch.float64), sim, points,
                                n_events=200, seed=1 + 1_000_003)
        assert 0 < mse < nothing
    assert "exact" in results and results["provenance"]["spec_hash"]
    # Fisher information of the exact likelihood on the Asimov dataset: n/σ² per parameter (σ² = 1.25)
    info = results["fisher_information"]
    assert set(info) == {*labels, "exact"}
    if simulator == "gaussian":
        assert info["exact"]["errors"]["theta"] == pytest.approx((1.25 / 200) ** 0.5, rel=0.1)
    provenance = json.loads((out / "provenance.json").read_text())
    assert set(provenance["timings_s"]) == {"stages", "evaluate", "report", "infer: comparisons",
                                            *(f"infer: {label}" for label in labels)}
    members = [f"train_0_member{m}" for m in range(1, estimators[0].get("ensemble", 1))]
    assert {r["stage"] for r in provenance["stages"]} == {
        "simulate_0000", "merge", "training", "train_0", *(["train_1"] if len(labels) > 1 else []), *members,
        *(f"infer_{i}" for i in range(len(labels))), "infer_comparisons", "report"}
    assert all(r["state"] == "done" for r in provenance["stages"])
    profiles = ["profiles.png"] if len(names) == 2 else []  # 1-D profiles of the 2-D scans
    for plot in ("likelihood_scan.png", "log_ratio.png", "training.png", *profiles,
                 *(f"closure_{label}.png" for label in labels)):
        assert (out / "plots" / plot).stat().st_size > 1000
    # closure at θ_true with each parameter at both ends of the estimator's 95 % interval, in every observable
    for label in labels:
        closure = results["estimators"][label]["closure"]
        assert len(closure) == 2 * len(names)
        for row, (k, end) in zip(closure, [(k, e) for k in range(len(names)) for e in (0, 1)]):
            assert row["theta"][names[k]] == pytest.approx(results["estimators"][label]["intervals"][names[k]]["95"][end])
            assert [h["observable"] for h in row["histograms"]] == list(sim.observable_names)
            assert all(h["chi2"] >= 0 and h["ndf"] == 9 and 0 <= h["p_value"] <= 1 for h in row["histograms"])
    assert "closure" in result.output
    for label in labels:
        assert (out / "models" / label / "estimator.json").is_file()
    for e in estimators:  # ensembles: every member saved, the size recorded
        label = e.get("label", e["method"])
        if e.get("ensemble", 1) > 1:
            assert results["estimators"][label]["ensemble"] == e["ensemble"]
            # each member's Fisher information at the truth: members trained with other seeds differ
            block = results["estimators"][label]["members"]
            assert len(block["fisher_information"]) == e["ensemble"]
            assert all(0 < v < 1 for v in block["fisher_errors_spread"].values())
            assert len({m["determinant"] for m in block["fisher_information"]}) == e["ensemble"]
            assert all((out / "models" / label / f"member{m}" / "weights.pt").is_file() for m in range(1, e["ensemble"]))
            # where the members disagree: the spread of their −2Δlog L on an 11 × 11 grid over the 95 % region,
            # zero nowhere but at each member's own minimum, and drawn
            spread = np.asarray(block["disagreement"]["q_spread"])
            assert spread.shape == (11, 11) and np.all(spread >= 0) and spread.max() > 0
            assert (out / "plots" / f"ensemble_{label}.png").stat().st_size > 1000
    assert (out / "data" / "training.h5").is_file()


def test_bad_spec_exits_with_a_clear_message(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(yaml.safe_dump({"inference": {"theta_true": {"theta": 7}}}))
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "theta = 7 is outside its range" in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_valid(example):
    result = CliRunner().invoke(app, ["check", str(example)])
    assert result.exit_code == 0, result.output


def test_schema_command_prints_json_schema():
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.output)["title"] == "RunSpec"


def test_drell_yan_run_compares_histogram_ml_and_truth(tmp_path):
    """The physics example on a tiny budget: three expected contours and their areas."""
    spec = yaml.safe_load((EXAMPLES / "drell_yan_contact.yaml").read_text())
    spec["simulator"]["options"]["n_events"] = 6000
    spec["data"]["n_samples"] = 3000
    spec["training"]["estimators"] = [{"method": "alices", "epochs": 3}]
    spec["training"]["sally"] = {"n_samples": 2000, "bins": 3, "epochs": 3}
    spec["inference"].update(n_mc=2000, grid_points=11, zoom=1, held_out_events=4000)
    spec["inference"]["systematics"] = [
        {"name": "lumi", "kind": "norm", "up": 1.017, "down": 0.983},
        {"name": "mll_tilt", "kind": "shape", "observable": "m_ll", "size": 0.05},
    ]
    spec["inference"]["profile"] = {"grid_points": 9}
    path = tmp_path / "dy.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    areas = results["expected_contour_area"]
    assert set(areas) == {"ml", "histogram", "truth", "sally"} and all(a > 0 for a in areas.values())
    assert areas["truth"] < areas["histogram"]  # parton level is the ceiling
    # the Asimov likelihoods peak at the truth (rate and shape from the same events)
    for name in ("c_LL", "c_LR"):
        assert abs(results["comparisons"]["truth"]["mle"][name]) < 1e-3
        assert abs(results["comparisons"]["histogram"]["mle"][name]) < 1e-3
    assert results["dataset"]["luminosity_fb"] == 139.0
    # Fisher information: the truth beats the histogram, which beats the rate alone (rank 1: det ≈ 0)
    info = results["fisher_information"]
    assert set(info) == {"alices", "truth", "rate", "histogram", "sally_score"}
    assert info["truth"]["determinant"] > info["histogram"]["determinant"] > 1e3 * abs(info["rate"]["determinant"])
    for name in ("c_LL", "c_LR"):
        assert info["truth"]["errors"][name] < info["histogram"]["errors"][name]
    assert (out / "plots" / "fisher_information.png").stat().st_size > 1000
    # on a second pool no estimator saw: what each statistic keeps, below the truth's, with bootstrap errors
    kept = results["fisher_information_kept"]
    assert set(kept) == {"alices", "truth", "sally_score"}
    for label in ("alices", "sally_score"):
        assert 0 < kept[label]["determinant"] < kept["truth"]["determinant"]
        assert kept[label]["determinant_error"] > 0 and all(v > 0 for v in kept[label]["errors_error"].values())
    assert "kept det I" in result.output
    # paired reweighting closure of ALICES in all four observables at four points around the truth
    closure = results["estimators"]["alices"]["closure"]
    assert len(closure) == 4 and all(len(row["histograms"]) == 4 for row in closure)
    assert (out / "plots" / "closure_alices.png").stat().st_size > 1000
    # profiled with a luminosity and an m_ll-tilt nuisance parameter: Asimov pulls at 0; with ~1.7e5 events
    # the data constrain both (the total to 0.24 %, so the 1.7 % luminosity to ~0.14 σ); profiling widens
    profiled = results["profiled"]
    assert set(profiled) == {"alices", "truth"}
    for label in profiled:
        nps = profiled[label]["nuisance_parameters"]
        assert set(nps) == {"lumi", "mll_tilt"}
        assert all(abs(v["value"]) < 0.05 for v in nps.values())
    for name in ("lumi", "mll_tilt"):
        assert 0.02 < profiled["truth"]["nuisance_parameters"][name]["error"] < 0.5
    assert profiled["truth"]["mle"] == pytest.approx({"c_LL": 0.0, "c_LR": 0.0}, abs=1e-4)
    for name in ("c_LL", "c_LR"):
        width = lambda block: block["intervals"][name]["68"][1] - block["intervals"][name]["68"][0]  # noqa: E731
        assert width(profiled["truth"]) > width(results["comparisons"]["truth"])
    assert (out / "plots" / "pulls.png").stat().st_size > 1000
    # profiling can only lose information: the profiled truth information is below the plain one
    profiled_info = np.array(results["fisher_information_profiled"]["truth"]["matrix"])
    assert np.all(np.linalg.eigvalsh(np.array(info["truth"]["matrix"]) - profiled_info) > -1e-6 * profiled_info.max())
    assert results["fisher_information_profiled"]["truth"]["errors"]["c_LL"] > info["truth"]["errors"]["c_LL"]
    assert results["provenance"]["generator"]["pythia_version"] == "8.317.2"
    assert (out / "data" / "events.h5").is_file() and (out / "models" / "sally" / "estimator.json").is_file()
    # the pool's weights and the same events reweighted to the closure points (their effective numbers of events)
    assert (out / "plots" / "weights.png").stat().st_size > 1000


def test_physics_spec_errors(tmp_path):
    from hepsbi.errors import SpecError
    from hepsbi.workflow import parse_spec
    from hepsbi.workflow.inputs import prepare

    base = {"simulator": {"name": "drell_yan", "options": {"n_events": 100, "parameters": ["c_LL"]}}}
    with pytest.raises(SpecError, match="inference.luminosity: required for weighted simulators"):
        prepare(parse_spec(base))
    with pytest.raises(SpecError, match="inference.histogram.observable: 'mll' is not an observable"):
        prepare(parse_spec(base | {"inference": {"luminosity": 139, "histogram": {"observable": "mll", "bins": [1, 2]}}}))
    with pytest.raises(SpecError, match=r"inference.pair: two distinct parameters of \['c_LL', 'c_LR', 'c_RL'"):
        prepare(parse_spec({"simulator": {"name": "drell_yan", "options": {"parameters": ["c_LL", "c_LR", "c_RL"]}},
                            "inference": {"luminosity": 1, "pair": ["c_LL", "c_XX"]}}))
    with pytest.raises(SpecError, match="inference.pair: only for more than two parameters"):
        prepare(parse_spec({"simulator": {"name": "drell_yan", "options": {"parameters": ["c_LL", "c_LR"]}},
                            "inference": {"luminosity": 1, "pair": ["c_LL", "c_LR"]}}))
    with pytest.raises(SpecError, match="need a weighted simulator"):
        prepare(parse_spec({"training": {"sally": {}}}))


@pytest.mark.slow
def test_coverage_command_on_the_gaussian_toy(tmp_path):
    """300 pseudo-experiments: the Wilks intervals of the exact likelihood and of a trained ALICES cover within
    3σ of nominal (an estimator trained on 1500 samples for 4 epochs covers only ~30 %: the study exposes it)."""
    spec = tiny_spec(tmp_path, "gaussian", {"theta": 0.3}, [{"method": "alices"}])
    doc = yaml.safe_load(spec.read_text())
    doc["data"]["n_samples"] = 20000
    doc["training"]["estimators"] = [{"method": "alices"}]
    spec.write_text(yaml.safe_dump(doc))
    out = tmp_path / "cov"
    result = CliRunner().invoke(app, ["coverage", str(spec), "--toys", "300", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "coverage of Wilks intervals over 300 toys" in result.output
    doc = json.loads((out / "coverage.json").read_text())
    assert set(doc["likelihoods"]) == {"alices", "exact"}
    for label in ("exact", "alices"):
        block = doc["likelihoods"][label]
        assert block["n_toys"] == 300 and block["failed_fits"] == 0
        for level in ("68", "95"):
            assert abs(block["levels"][level]["pull"]) < 3.0, (label, block["levels"])
    assert (out / "plots" / "coverage.png").stat().st_size > 1000


def test_coverage_after_a_run_reuses_its_simulation_and_training(tmp_path, monkeypatch):
    """`hepsbi coverage` retrained everything into runs/<name>-coverage: by default it now works in the run's own
    directory, where every simulation and training stage is already done."""
    spec = tiny_spec(tmp_path, "gaussian", {"theta": 0.3}, [{"method": "alices"}])
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(app, ["run", str(spec), "--quiet"]).exit_code == 0
    run = tmp_path / "runs" / "spec"
    before = {d.name: (d / "manifest.json").stat().st_mtime for d in (run / "stages").iterdir()}
    result = CliRunner().invoke(app, ["coverage", str(spec), "--toys", "20", "--quiet"])
    assert result.exit_code == 0, result.output
    after = {d.name: (d / "manifest.json").stat().st_mtime for d in (run / "stages").iterdir()}
    assert after == before  # nothing simulated or trained again
    assert (run / "coverage.json").is_file() and (run / "results.json").is_file()


@pytest.mark.filterwarnings("ignore::hepsbi.errors.ExtrapolationWarning")
def test_training_in_rounds_focuses_theta_on_the_sensitive_region(tmp_path):
    """training.rounds = 2: round 1 trains ALICES on the prior, its scan sets the box of round 2 (the 95 % interval
    widened ×2 around the MLE), and the run's estimator is trained on θ drawn there — so its scan over the whole
    prior extrapolates outside the box, which the run's warnings say."""
    import h5py

    spec = tiny_spec(tmp_path, "gaussian", {"theta": 0.3}, [{"method": "alices"}])
    document = yaml.safe_load(spec.read_text())
    document["training"]["rounds"] = 2
    del document["training"]["estimators"][0]["epochs"]  # a first round as trained by default (4 epochs miss θ)
    spec.write_text(yaml.safe_dump(document))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    focus = json.loads((out / "data" / "focus_1.json").read_text())
    (lo, hi), mle = focus["interval_95"]["theta"], focus["mle"]["theta"]
    assert focus["low"][0] == pytest.approx(max(-1.0, mle - 2 * (mle - lo)))
    assert focus["high"][0] == pytest.approx(min(1.0, mle + 2 * (hi - mle)))
    assert focus["low"][0] < 0.3 < focus["high"][0] and focus["high"][0] - focus["low"][0] < 1.5  # prior: [-1, 1]
    with h5py.File(out / "data" / "training.h5") as f:
        theta = f["theta"][...]
    assert theta.min() >= focus["low"][0] and theta.max() <= focus["high"][0]
    stages = {r["stage"] for r in json.loads((out / "provenance.json").read_text())["stages"]}
    assert {"training_1", "focus_1", "training", "train_0"} <= stages
    found = [w for w in json.loads((out / "results.json").read_text())["warnings"] if w["code"] == "extrapolation"]
    assert [w["likelihood"] for w in found] == ["alices"]


def test_version_flag_and_flags_without_a_type():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip().startswith("hepsbi ")
    text = CliRunner().invoke(app, ["run", "--help"], terminal_width=120).output
    quiet = next(line for line in text.splitlines() if "--quiet" in line)
    assert "<bool>" not in quiet
    for args in (["--help"], ["run", "--help"], ["limits", "--help"]):  # typer's own --help too
        text = CliRunner().invoke(app, args, terminal_width=120).output
        assert "--help" in text and "<bool>" not in text, args
    # a docstring's line breaks are not kept in the command list (they broke lines in mid-sentence)
    listing = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "240"}).output
    assert any("provenance), a training-data file" in line for line in listing.splitlines())


def test_export_a_runs_learned_likelihoods_for_use_without_hepsbi(tmp_path):
    """`hepsbi export RUN_DIR`: every estimator of the run as ONNX with its sidecar; an ensemble exported as the
    mean of its members, which onnxruntime reproduces."""
    onnxruntime = pytest.importorskip("onnxruntime", reason="pip install 'hepsbi[export]'")
    pytest.importorskip("onnxscript", reason="pip install 'hepsbi[export]'")
    import torch

    from hepsbi.estimators import RatioEnsemble, RatioEstimator

    spec = tiny_spec(tmp_path, "multi_gaussian", {"theta1": 0.3, "theta2": -0.2}, [{"method": "alice", "ensemble": 2}])
    out = tmp_path / "run"
    assert CliRunner().invoke(app, ["run", str(spec), "--out", str(out), "--quiet"]).exit_code == 0
    result = CliRunner().invoke(app, ["export", str(out)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "export/alice.onnx" in result.output and "relative" in result.output
    sidecar = json.loads((out / "export" / "alice.json").read_text())
    assert sidecar["ensemble"] == 2 and sidecar["output"]["name"] == "log_r"
    assert [p["name"] for p in sidecar["parameter_space"]["parameters"]] == ["theta1", "theta2"]
    ensemble = RatioEnsemble([RatioEstimator.load(out / "models" / "alice"),
                              RatioEstimator.load(out / "models" / "alice" / "member1")])
    x = torch.randn(50, len(sidecar["observables"]))
    theta = torch.tensor([0.3, -0.2]).expand(50, -1)
    session = onnxruntime.InferenceSession(str(out / "export" / "alice.onnx"))
    got = session.run(None, {"x": x.numpy(), "theta": theta.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(got), ensemble.log_ratio(x, torch.tensor([0.3, -0.2])).float(),
                               rtol=0, atol=1e-5)
    bad = CliRunner().invoke(app, ["export", str(out), "--label", "nope"])
    assert bad.exit_code == 2 and "--label 'nope': not an estimator of this run" in bad.output


def test_the_device_is_placement_a_rerun_elsewhere_reuses_every_stage(tmp_path):
    """execution.device / --device says where networks train and evaluate: a run, then the same spec with --device
    auto, computes nothing again and publishes the same results; a device name hepsbi does not know is named with
    its key, and (without CUDA) --device cuda fails before any stage runs."""
    import torch

    spec = tiny_spec(tmp_path, "gaussian", {"theta": 0.3}, [{"method": "alices"}])
    out = tmp_path / "run"
    assert CliRunner().invoke(app, ["run", str(spec), "--out", str(out), "--quiet"]).exit_code == 0
    before = {d.name: (d / "manifest.json").stat().st_mtime for d in (out / "stages").iterdir()}
    results = (out / "results.json").read_bytes()
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(out), "--quiet", "--device", "auto"])
    assert result.exit_code == 0, result.output
    after = {d.name: (d / "manifest.json").stat().st_mtime for d in (out / "stages").iterdir()}
    assert after == before and (out / "results.json").read_bytes() == results
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(tmp_path / "x"), "--device", "gpu"])
    assert result.exit_code == 2 and "--device: String should match pattern" in " ".join(result.output.split())
    document = yaml.safe_load(spec.read_text()) | {"execution": {"device": "tpu"}}
    spec.write_text(yaml.safe_dump(document))
    result = CliRunner().invoke(app, ["check", str(spec)])
    assert result.exit_code == 2 and "execution.device" in result.output
    if not torch.cuda.is_available():
        document["execution"]["device"] = "cuda"
        spec.write_text(yaml.safe_dump(document))
        result = CliRunner().invoke(app, ["run", str(spec), "--out", str(tmp_path / "cuda"), "--quiet"])
        assert result.exit_code == 2, result.output
        assert "execution.device is 'cuda', but torch sees no CUDA device" in " ".join(result.output.split())
        assert not (tmp_path / "cuda" / "stages").exists() or not any((tmp_path / "cuda" / "stages").iterdir())
