"""LHE input as a weighted simulator (``simulator: lhe``): morphing solved from <rwgt> benchmark weights, checked
against the Drell–Yan matrix elements the weights were written from, weight variations as nuisance parameters, and
a profile likelihood through ``hepsbi run`` end to end."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

C_MAX = 0.05
BENCHMARKS = {"sm": {}, "cLL_plus": {"c_LL": C_MAX}, "cLL_minus": {"c_LL": -C_MAX}}
PARAMETERS = {"c_LL": {"low": -C_MAX, "high": C_MAX, "unit": "TeV^-2"}}
#: a detector that keeps every event and every momentum as generated
SEE_ALL = {"lepton_eta_max": 100.0, "lepton_pt_min": 0.0, "lepton_efficiency": 1.0, "resolution_constant": 0.0,
           "resolution_slope": 0.0}


def scale_factors(m: np.ndarray) -> dict[str, np.ndarray]:
    """The synthetic scale variations, per event of dilepton mass m (GeV): what XWGTUP is multiplied by."""
    return {"mur2": 1.0 + 0.1 * m / 1000.0, "muf05": 1.0 - 0.05 * m / 1000.0, "mur05": 1.0 - 0.12 * m / 1000.0}


@pytest.fixture(scope="module")
def drell_yan_lhe(tmp_path_factory):
    """Drell–Yan events at the SM written as an LHE file whose <rwgt> benchmarks carry the contact interactions' real
    θ-dependence (the matrix-element weight ratios at c_LL = 0, ±0.05 TeV⁻²), with scale variations under a group
    name no convention knows and three PDF members; returns the file, the simulator and its pool."""
    from hepsbi.physics.drell_yan import DrellYanContact
    from hepsbi.physics.pythia import hard_leptons

    sim = DrellYanContact(parameters=["c_LL"], c_max=C_MAX, n_events=4000, n_slices=2, m_min=200.0, seed=3)
    pool = sim.generate()
    n = len(pool)
    z = torch.from_numpy(pool.z)
    ratios = {wid: sim.weight_ratio(z, torch.tensor([p.get("c_LL", 0.0)], dtype=torch.float64)).numpy()
              for wid, p in BENCHMARKS.items()}
    lm, lp = hard_leptons(pool.z[:, :14])
    mass = np.sqrt(pool.z[:, 4])
    scales = scale_factors(mass)
    pdf = 1.0 + 0.02 * np.random.default_rng(0).standard_normal((n, 3))
    header = ["<LesHouchesEvents version=\"3.0\">\n<header>\n<initrwgt>\n",
              "<weightgroup name='dim6 points'>\n", *(f"<weight id='{w}'> set dim6 {k} </weight>\n"
                                                     for k, w in enumerate(BENCHMARKS)), "</weightgroup>\n",
              "<weightgroup name='wiggles'>\n<weight id='mur2' MUR='2.0' MUF='1.0'> </weight>\n",
              "<weight id='muf05'> muR=1.0 muF=0.5 </weight>\n<weight id='mur05' MUR='0.5' MUF='1.0'> </weight>\n",
              "</weightgroup>\n<weightgroup name='set'>\n",
              *(f"<weight id='p{k}' PDF='{260000 + k}'> </weight>\n" for k in range(4)),
              "</weightgroup>\n</initrwgt>\n</header>\n<init>\n 2212 2212 6.5e+03 6.5e+03 0 0 260000 260000 -4 1\n",
              f" {pool.weights.sum():.10e} 1.0e-01 {pool.weights.max() * n:.10e} 1\n</init>\n"]
    lines = header
    for i in range(n):
        w = pool.weights[i] * n  # XWGTUP: Σ XWGTUP / N = σ
        e1, e2 = pool.z[i, 2] * 6500.0, pool.z[i, 3] * 6500.0
        parts = [(int(pool.z[i, 0]), -1, (0.0, 0.0, e1, e1)), (int(pool.z[i, 1]), -1, (0.0, 0.0, -e2, e2)),
                 (13, 1, (lm[i, 1], lm[i, 2], lm[i, 3], lm[i, 0])), (-13, 1, (lp[i, 1], lp[i, 2], lp[i, 3], lp[i, 0]))]
        body = "".join(f" {pid} {st} 0 0 0 0 {px:.12e} {py:.12e} {pz:.12e} {e:.12e} 0.0 0.0 9.0\n"
                       for pid, st, (px, py, pz, e) in parts)
        weights = {wid: w * r[i] for wid, r in ratios.items()} | {k: w * f[i] for k, f in scales.items()}
        weights |= {"p0": w} | {f"p{k + 1}": w * pdf[i, k] for k in range(3)}
        rwgt = "".join(f"<wgt id='{k}'> {v:.12e} </wgt>\n" for k, v in weights.items())
        lines.append(f"<event>\n 4 1 {w:.12e} 1.0e+02 7.8e-03 1.18e-01\n{body}<rwgt>\n{rwgt}</rwgt>\n</event>\n")
    lines.append("</LesHouchesEvents>\n")
    path = tmp_path_factory.mktemp("lhe") / "drell_yan.lhe"
    path.write_text("".join(lines))
    return path, sim, pool, pdf


def test_morphing_from_benchmark_weights_reproduces_the_matrix_elements(drell_yan_lhe):
    """Morphing solved from three benchmark weights per event gives back the contact-interaction weight ratios,
    fiducial cross sections, joint log-likelihoods and joint scores of the matrix elements, at points that are no
    benchmark; the scale envelope and the PDF spread are the factors written into the file."""
    from hepsbi.physics.lhe_model import LHEMorphed

    path, dy, pool, pdf = drell_yan_lhe
    sim = LHEMorphed(path, PARAMETERS, BENCHMARKS, variations={"scale": "scale", "pdf": "pdf",
                                                                "mur": {"up": "mur2", "down": "mur05"}},
                     observables=["m_ll", "y_ll"], detector=SEE_ALL)
    assert sim.n_events == len(pool)
    events = sim.generate()
    assert len(events) == len(pool)
    np.testing.assert_allclose(events.weights, pool.weights, rtol=1e-9)
    assert events.provenance["benchmark_residual"] < 1e-9 and events.provenance["benchmark_condition"] < 10
    z_lhe, z_dy = torch.from_numpy(events.z), torch.from_numpy(pool.z)
    for c in (0.03, -0.017, 0.05):
        theta = torch.tensor([c], dtype=torch.float64)
        np.testing.assert_allclose(sim.weight_ratio(z_lhe, theta), dy.weight_ratio(z_dy, theta), rtol=1e-8)
        assert sim.cross_section(theta).fiducial_pb == pytest.approx(dy.cross_section(theta).fiducial_pb, rel=1e-8)
        np.testing.assert_allclose(sim.joint_log_prob(z_lhe, theta), dy.joint_log_prob(z_dy, theta), atol=1e-8)
    theta = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    score_lhe = torch.autograd.grad(sim.joint_log_prob(z_lhe, theta).sum(), theta)[0]
    score_dy = torch.autograd.grad(dy.joint_log_prob(z_dy, theta).sum(), theta)[0]
    assert float(score_lhe) == pytest.approx(float(score_dy), rel=1e-7)
    m = np.sqrt(pool.z[:, 4])
    f = scale_factors(m)
    up, down = sim.variation("scale", z_lhe)
    np.testing.assert_allclose(up, np.maximum.reduce([f["mur2"], f["muf05"], f["mur05"]]), rtol=1e-9)
    np.testing.assert_allclose(down, np.minimum.reduce([f["mur2"], f["muf05"], f["mur05"]]), rtol=1e-9)
    up, down = sim.variation("pdf", z_lhe)
    np.testing.assert_allclose(up, 1 + pdf.std(axis=1, ddof=1), rtol=1e-8)
    up, down = sim.variation("mur", z_lhe)
    np.testing.assert_allclose(up / down, f["mur2"] / f["mur05"], rtol=1e-9)


def test_named_errors_of_the_lhe_simulator(drell_yan_lhe):
    from hepsbi.errors import SimulatorError
    from hepsbi.physics.lhe_model import LHEMorphed

    path = drell_yan_lhe[0]
    with pytest.raises(SimulatorError, match="needs at least 3"):
        LHEMorphed(path, PARAMETERS, {"sm": {}, "cLL_plus": {"c_LL": C_MAX}})
    with pytest.raises(SimulatorError, match="'c_RR' is not a parameter"):
        LHEMorphed(path, PARAMETERS, BENCHMARKS | {"sm": {"c_RR": 1.0}})
    with pytest.raises(SimulatorError, match="declares no weight 'nope'"):
        LHEMorphed(path, PARAMETERS, {**BENCHMARKS, "nope": {"c_LL": 0.01}})
    with pytest.raises(SimulatorError, match="variations.alpha_s"):
        LHEMorphed(path, PARAMETERS, BENCHMARKS, variations={"alpha_s": "alphas"})
    linear = LHEMorphed(path, PARAMETERS, BENCHMARKS, order=1, n_events=50)
    assert len(linear.morphing_basis(torch.tensor([0.01]))) == 2
    assert linear.generate().provenance["benchmark_residual"] > 1e-3  # a quadratic is not linear


def test_profile_likelihood_on_lhe_input_through_hepsbi_run(drell_yan_lhe, tmp_path):
    """``hepsbi run`` on the LHE file: a learned likelihood and an m_ll histogram for c_LL, the scale envelope, the PDF
    spread and a luminosity as nuisance parameters profiled; the expected result is centred on θ_true and the nuisance
    parameters widen the interval."""
    import yaml

    from hepsbi.workflow.run import run
    from hepsbi.workflow.spec import load_spec

    path = drell_yan_lhe[0]
    spec = {
        "name": "lhe_contact",
        "simulator": {"name": "lhe", "options": {"paths": [str(path)], "parameters": PARAMETERS,
                                                 "benchmarks": BENCHMARKS,
                                                 "variations": {"scale": "scale", "pdf": "pdf"},
                                                 "observables": ["m_ll", "cos_theta_cs", "y_ll"]}},
        "data": {"n_samples": 1500, "seed": 0},
        "training": {"estimators": [{"method": "alices", "epochs": 3}, {"method": "morphing", "epochs": 3}]},
        "inference": {"theta_true": {"c_LL": 0.0}, "luminosity": 139.0, "n_mc": 1500, "grid_points": 9,
                      "histogram": {"observable": "m_ll", "bins": [200, 300, 500, 800, 1500, 13000]},
                      "systematics": [{"name": "scale", "kind": "weights"}, {"name": "pdf", "kind": "weights"},
                                      {"name": "lumi", "kind": "norm", "up": 1.02, "down": 0.98}],
                      "profile": {"grid_points": 7}, "closure": None},
    }
    file = tmp_path / "spec.yaml"
    file.write_text(yaml.safe_dump(spec))
    results = run(load_spec(file), tmp_path / "run", progress=False)
    assert set(results["profiled"]) == {"alices", "morphing", "truth"}  # the morphing-aware estimator on LHE input
    assert results["comparisons"]["histogram"]["mle"]["c_LL"] == pytest.approx(0.0, abs=1e-3)
    for label, plain in (("alices", results["intervals"]), ("morphing", results["estimators"]["morphing"]["intervals"]),
                         ("truth", results["comparisons"]["truth"]["intervals"])):
        profiled = results["profiled"][label]
        assert profiled["mle"]["c_LL"] == pytest.approx(0.0, abs=1e-3)
        assert set(profiled["nuisance_parameters"]) == {"scale", "pdf", "lumi"}
        assert all(0 < n["error"] < 1.5 for n in profiled["nuisance_parameters"].values())
        wide, narrow = profiled["intervals"]["c_LL"]["68"], plain["c_LL"]["68"]
        assert wide[1] - wide[0] >= (narrow[1] - narrow[0]) * 0.999, (label, wide, narrow)
    truth = results["profiled"]["truth"]["intervals"]["c_LL"]["68"]
    assert 0.0005 < truth[1] < 0.005  # what 139 fb⁻¹ of these events know about c_LL at parton level
    # the pool's stage key covers the file itself: the same file reuses it, a replaced file is read again
    stages = lambda: sorted(p.name for p in (tmp_path / "run").rglob("simulate_0000-*"))  # noqa: E731
    first = stages()
    assert len(first) == 1
    spec_object = load_spec(file)
    run(spec_object, tmp_path / "run", progress=False)
    assert stages() == first
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    run(spec_object, tmp_path / "run", progress=False)
    assert len(stages()) == 2
