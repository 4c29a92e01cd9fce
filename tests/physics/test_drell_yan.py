"""DrellYanContact end to end with Pythia (small statistics), and closure against Pythia's own CI process."""

import numpy as np
import pytest
import torch
from conftest import assert_joint_score_matches_finite_differences

from hepsbi import RatioEstimator, TrainingData
from hepsbi.data import Events, EventStore, inspect_events
from hepsbi.errors import DataError, SimulatorError
from hepsbi.physics import DrellYanContact, FastDetector, MassSlice, PythiaRun, eta_lambda_to_theta
from hepsbi.physics.closure import closure


@pytest.fixture(scope="module")
def sim() -> DrellYanContact:
    s = DrellYanContact(n_events=8000, seed=7)
    s.generate()
    return s


def test_generation_and_cross_section(sim):
    events = sim.events
    assert events.x.shape[1] == 4 and len(events) > 4000
    assert events.provenance["pythia_version"] == "8.317.2" and events.provenance["seed"] == 7
    sigma_sm, err = sim.cross_section(torch.zeros(4))
    assert sigma_sm == pytest.approx(events.weights.sum())
    assert 0 < err < 0.05 * sigma_sm
    # Pythia: σ(m̂ > 200 GeV, μμ, 13 TeV) ≈ 2.3e-9 mb = 2.3 pb in total; the fiducial part is below it.
    assert 0.3 * 2.3 < sigma_sm < 2.3
    # the named fields say which cross section it is: fiducial, below Pythia's generator-level one
    sigma = sim.cross_section(torch.zeros(4))
    assert sigma.fiducial_pb == sigma_sm and sigma.error_pb == err
    assert sigma.fiducial_pb < events.provenance["sigma_total_pb"] and events.provenance["weight_unit"] == "pb"
    assert sim.cross_section(eta_lambda_to_theta(5, eta_LL=-1))[0] > 1.2 * sigma_sm


def test_joint_score_matches_finite_differences(sim):
    z = torch.from_numpy(sim.events.z[:200])
    theta = torch.tensor([0.1, -0.2, 0.05, 0.3], dtype=torch.float64)
    assert_joint_score_matches_finite_differences(sim, z, theta, rtol=1e-5)


def test_morphing_in_latent_matches_direct_matrix_element(sim):
    from hepsbi.physics.matrix_elements import me_weight

    z = sim.events.z[:300]
    quark = torch.from_numpy(np.abs(np.where(z[:, 0] > 0, z[:, 0], z[:, 1]))).long()
    args = (quark, torch.from_numpy(z[:, 4]), torch.from_numpy(z[:, 14]))
    theta = torch.tensor([0.4, -0.3, 0.2, -0.6], dtype=torch.float64)
    direct = me_weight(*args, theta.expand(300, -1), torch.from_numpy(z[:, 5])) / me_weight(
        *args, torch.zeros(300, 4), torch.from_numpy(z[:, 5]))
    np.testing.assert_allclose(sim.weight_ratio(torch.from_numpy(z), theta).numpy(), direct.numpy(), rtol=1e-9)


def test_reduced_morphing_basis_of_a_parameter_subset(sim):
    """For (c_LL, c_RR) free, the 6 monomials in them reproduce the weight ratios and the cross section."""
    sub = DrellYanContact(parameters=["c_LL", "c_RR"], seed=7)
    sub.use_events(sim.events)
    z = torch.from_numpy(sim.events.z[:500])
    theta = torch.tensor([0.3, -0.5], dtype=torch.float64)
    basis = sub.morphing_basis(theta)
    assert basis.shape == (6,)
    full = torch.tensor([0.3, 0.0, 0.0, -0.5], dtype=torch.float64)
    np.testing.assert_allclose((sub.morphing_coefficients(z) @ basis).numpy(), sim.weight_ratio(z, full).numpy(), rtol=1e-12)
    assert float(sub.sigma_coefficients @ basis) == pytest.approx(sim.cross_section(full)[0] / sim.cross_section(torch.zeros(4))[0], rel=1e-12)


def test_a_finer_histogram_never_has_less_fisher_information(sim):
    """Splitting the m_ll bins by cos θ_CS refines the partition: I_2D − I_1D is positive semi-definite, and
    the parton-level information bounds both."""
    from hepsbi.inference.fisher import (
        binned_information,
        information_from_scores,
        per_event_scores,
        rate_score,
    )
    from hepsbi.inference.templates import bin_index_edges

    theta = torch.tensor([0.2, -0.1, 0.1, 0.05], dtype=torch.float64)
    x = sim.events.x
    m_edges = [200, 300, 500, 1000, 13000]
    one, n1 = bin_index_edges(x[:, 0], m_edges)
    two, n2 = bin_index_edges(x[:, :2], [m_edges, [-1.0, -0.5, 0.0, 0.5, 1.0]])
    assert n2 == 16 and np.all((two >= 0) == (one >= 0)) and np.all(two[one >= 0] // 4 == one[one >= 0])
    i1 = binned_information(sim.expected_counts(one, n1, 1e5), theta)
    i2 = binned_information(sim.expected_counts(two, n2, 1e5), theta)
    assert np.linalg.eigvalsh(i2 - i1).min() > -1e-8 * np.abs(i2).max()
    assert np.trace(i2) > 1.05 * np.trace(i1)
    z = torch.from_numpy(sim.events.z)
    expected = 1e5 * torch.from_numpy(sim.events.weights) * sim.weight_ratio(z, theta)
    rate = rate_score(lambda t: float((1e5 * torch.from_numpy(sim.events.weights) * sim.weight_ratio(z, t)).sum()), theta)
    truth = information_from_scores(per_event_scores(lambda t: sim.joint_log_prob(z, t), theta), expected, rate)
    assert np.linalg.eigvalsh(truth - i2).min() > -1e-8 * np.abs(truth).max()


def test_resampling_reproduces_reweighted_means(sim):
    theta = eta_lambda_to_theta(5, eta_LL=-1)
    gen = torch.Generator().manual_seed(1)
    x, z = sim.sample(theta.expand(6000, -1), gen)
    w = sim.events.weights * sim.weight_ratio(torch.from_numpy(sim.events.z), theta).numpy()
    expected = np.average(sim.events.x[:, 0], weights=w)
    spread = np.sqrt(np.average((sim.events.x[:, 0] - expected) ** 2, weights=w) / 6000)
    assert abs(x[:, 0].mean().item() - expected) < 4 * spread


def test_weighted_training_data_and_a_short_fit(sim):
    data = TrainingData.from_simulator(sim, 4000, seed=3)
    assert data.provenance["reweighted"] is True
    assert torch.all(data.weights[data.y == 0] > 0)
    # y = 1 rows carry w·r; their total estimates σ_fid(θ)-weighted sums, close to the y = 0 total on average
    ratio = data.weights[data.y == 1].sum() / data.weights[data.y == 0].sum()
    assert 0.5 < ratio.item() < 3.0
    est = RatioEstimator("alices", epochs=2, progress=False).fit(data)
    assert torch.all(torch.isfinite(est.log_ratio(data.x[:10], torch.tensor([0.2, 0.0, 0.0, 0.0]))))


def test_bad_pythia_setting_is_named():
    with pytest.raises(SimulatorError, match="Pythia rejected the setting 'PhaseSpace:mHatMinn = 5'"):
        PythiaRun(settings=["PhaseSpace:mHatMinn = 5"]).generate(MassSlice(200, 300, 5), seed=1)


def test_failed_pythia_init_is_an_error():
    with pytest.raises(SimulatorError, match="Pythia failed to initialise with settings .*Beams:idA = 99999"):
        PythiaRun(settings=["Beams:idA = 99999"]).generate(MassSlice(200, 300, 5), seed=1)
    with pytest.raises(SimulatorError, match=r"seeds must lie in \[1, 900000000\]"):
        PythiaRun().generate(MassSlice(200, 300, 5), seed=0)


def test_empty_after_cuts_is_an_error():
    sim = DrellYanContact(n_events=200, n_slices=1, detector=FastDetector(lepton_pt_min=20_000.0))
    with pytest.raises(SimulatorError, match="no event passed the detector selection"):
        sim.generate()


def test_event_store_chunks_merge_and_stream(tmp_path, sim):
    events = sim.events
    store = EventStore(tmp_path / "chunks")
    pieces = np.array_split(np.arange(len(events)), 3)
    for i, idx in enumerate(pieces):
        store.write_chunk(i, events.select(idx))
    merged = store.merge(tmp_path / "events.h5", provenance={"note": "test"})
    loaded = Events.load(merged)
    np.testing.assert_array_equal(loaded.x, events.x)
    np.testing.assert_array_equal(loaded.z, events.z)
    np.testing.assert_array_equal(loaded.weights, events.weights)
    assert loaded.provenance["note"] == "test" and len(loaded.provenance["chunks"]) == 3
    streamed = list(EventStore.iterate(merged, chunk_size=1000))
    assert sum(len(p) for p in streamed) == len(events) and max(len(p) for p in streamed) == 1000
    summary = inspect_events(merged)
    assert summary["events"] == len(events) and summary["sum_weights"] == pytest.approx(events.weights.sum())
    # the pool can be restored from the file
    other = DrellYanContact(n_events=8000)
    other.use_events(loaded)
    assert other.cross_section(torch.zeros(4))[0] == pytest.approx(sim.cross_section(torch.zeros(4))[0])
    with pytest.raises(DataError, match="no chunks to merge"):
        EventStore(tmp_path / "empty").merge(tmp_path / "x.h5")


def test_negative_weights_survive_the_store(tmp_path):
    ev = Events(np.zeros((4, 1)), np.zeros((4, 2)), np.array([1.0, -0.5, 2.0, -0.25]), ["a"], ["z0", "z1"])
    ev.save(tmp_path / "neg.h5")
    summary = inspect_events(tmp_path / "neg.h5")
    assert summary["negative_weights"] == {"count": 2, "sum": -0.75}


@pytest.mark.slow
@pytest.mark.parametrize("eta", [{"LL": -1}, {"LR": 1}])
def test_closure_against_pythia_contact_interactions(eta):
    """SM reweighted to (Λ = 5 TeV, η) vs Pythia's ContactInteractions:QCffbar2mumubar generated directly."""
    result = closure(5.0, eta, n_events=100_000, seed=11)
    assert abs(result.relative_difference) < 0.01, result
    assert abs(result.pull) < 3, result
    assert result.pvalue_m_ll > 1e-3 and result.pvalue_cos_theta > 1e-3, result


@pytest.mark.slow
def test_full_shower_mode_gives_jets_and_met():
    observables = ("m_ll", "n_jets", "jet1_pt", "met", "pt_ll")
    sim = DrellYanContact(n_events=60, n_slices=1, shower=True, observables=observables, seed=3)
    events = sim.generate()
    assert len(events) > 20
    n_jets, jet1, met, pt_ll = events.x[:, 1], events.x[:, 2], events.x[:, 3], events.x[:, 4]
    assert np.all(n_jets == np.round(n_jets)) and np.any(n_jets > 0)
    assert np.all((jet1 > 0) == (n_jets > 0)) and np.all((jet1 == 0) | (jet1 >= 30.0))  # jets above threshold
    # the shower's recoil is visible: the dilepton p_T is balanced by hadronic activity, not by missing E_T,
    # which comes from neutrinos and smearing only (nonzero, a few GeV)
    assert np.all(met > 0) and np.median(met) < 0.25 * np.median(pt_ll)


def test_generate_to_store_chunks_and_inspect_cli(tmp_path):
    from typer.testing import CliRunner

    from hepsbi.cli import app

    sim = DrellYanContact(n_slices=2, seed=4)
    merged = sim.generate_to_store(tmp_path / "store", 3000, chunk_events=1000)
    assert len(EventStore(tmp_path / "store").chunks()) == 3
    events = Events.load(merged)
    assert events.provenance["n_generated"] == 3000 and len(events) > 1000
    result = CliRunner().invoke(app, ["inspect", str(merged)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "m_ll" in result.output and "8.317.2" in result.output
    total = float(events.weights.sum())
    assert f"sum of weights: {total:.6g} pb" in result.output  # the unit of Pythia's weights, σ_fid in pb
    bad = CliRunner().invoke(app, ["inspect", str(tmp_path / "missing.h5")])
    assert bad.exit_code == 2 and "no such file" in bad.output
    # training data (it was refused): rows, θ ranges, weights
    sim.use_events(events)
    data = TrainingData.from_simulator(sim, 400, seed=2)
    data.save(tmp_path / "training.h5")
    result = CliRunner().invoke(app, ["inspect", str(tmp_path / "training.h5")], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "hepsbi.TrainingData" in result.output and "rows: 400 (200 drawn at θ" in result.output
    low = float(data.theta[:, 0].min())
    assert f"θ: {sim.space.names[0]}" in result.output and f"{low:.6g}" in result.output
