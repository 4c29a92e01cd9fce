"""A user simulator that implements only the protocol works end to end."""

import pytest
import torch

from hepsbi import Parameter, ParameterSpace, RatioEstimator, TrainingData
from hepsbi.errors import SimulatorError
from hepsbi.simulators import check_simulator, has_exact_likelihood
from hepsbi.simulators.protocol import check_weighted_simulator, has_morphing, is_weighted
from hepsbi.simulators.registry import SIMULATORS, build_simulator, register_simulator, simulator_names


class Exponential:
    """z ~ Exp(rate = exp(θ)), x = z + N(0, 0.1): only the protocol, no exact marginal."""

    def __init__(self) -> None:
        self.space = ParameterSpace([Parameter("log_rate", -0.5, 0.5)])

    def sample(self, theta, generator):
        rate = torch.exp(theta[:, :1])
        u = torch.rand(theta.shape[0], 1, generator=generator, dtype=torch.float64)
        z = -torch.log(u) / rate
        return z + 0.1 * torch.randn(z.shape, generator=generator, dtype=torch.float64), z

    def joint_log_prob(self, z, theta):
        return theta[:, 0] - torch.exp(theta[:, 0]) * z[:, 0]


def test_protocol_only_simulator_trains(gen):
    sim = Exponential()
    assert not has_exact_likelihood(sim)
    data = TrainingData.from_simulator(sim, 2000, seed=3)
    # joint score of an exponential: 1 - rate z
    assert torch.allclose(data.t_xz[:, 0], 1 - torch.exp(data.theta[:, 0]) * _latent(sim, data))
    est = RatioEstimator("alices", epochs=5, progress=False).fit(data)
    assert est.log_ratio(data.x[:10], torch.tensor([0.2])).shape == (10,)


def _latent(sim, data):
    # recover z from the joint log ratio: log r = (θ - θ_ref) - (e^θ - 1) z
    theta = data.theta[:, 0]
    return (theta - data.log_r_xz) / (torch.exp(theta) - 1)


def test_missing_protocol_members_are_named():
    class Broken:
        space = ParameterSpace([Parameter("a", 0, 1)])

    with pytest.raises(SimulatorError, match=r"missing \['joint_log_prob', 'sample'\]"):
        check_simulator(Broken())


def test_registry_builds_by_name_and_import_path():
    assert type(build_simulator("galton", {"rows": 10, "nails": 15})).__name__ == "GaltonBoard"
    sim = build_simulator(f"{__name__}:Exponential")
    assert sim.space.names == ("log_rate",)
    with pytest.raises(SimulatorError, match=r"no option\(s\) \['bogus'\]"):
        build_simulator("gaussian", {"bogus": 1})
    with pytest.raises(SimulatorError, match="unknown simulator 'nope'"):
        build_simulator("nope")


class HalfWeighted(Exponential):
    """Declares weighted sampling but not the rest of the weighted protocol."""

    def sample_weighted(self, n, generator):
        x, z = self.sample(torch.zeros(n, 1, dtype=torch.float64), generator)
        return x, z, torch.ones(n, dtype=torch.float64)


def test_weighted_protocol_names_every_missing_member(monkeypatch):
    sim = HalfWeighted()
    assert is_weighted(sim) and not is_weighted(Exponential())
    missing = "['asimov', 'events', 'expected_counts', 'generate', 'n_events', 'observable_names', 'seed', 'use_events', 'weight_ratio']"
    with pytest.raises(SimulatorError, match=r"WeightedSimulator protocol .*missing " + missing.replace("[", r"\[").replace("]", r"\]")):
        check_weighted_simulator(sim)
    monkeypatch.setitem(SIMULATORS, "half_weighted", f"{__name__}:HalfWeighted")
    with pytest.raises(SimulatorError, match="WeightedSimulator protocol"):
        build_simulator("half_weighted")  # a run would fail much later without the check


def test_weighted_physics_simulator_is_checked_without_generating():
    from hepsbi.physics.drell_yan import DrellYanContact

    sim = DrellYanContact(n_events=10, n_slices=1)
    assert check_weighted_simulator(sim) is sim and has_morphing(sim)
    assert sim._events is None  # looking at the protocol members did not start Pythia
    assert not has_morphing(Exponential())


def test_simulators_register_by_name(monkeypatch):
    monkeypatch.setitem(SIMULATORS, "exponential", "x")  # replaced below; restored by monkeypatch
    register_simulator("exponential", f"{__name__}:Exponential")
    assert "exponential" in simulator_names() and "drell_yan" in simulator_names()
    assert build_simulator("exponential").space.names == ("log_rate",)
    with pytest.raises(SimulatorError, match="package.module:Class"):
        register_simulator("bad", "no_colon")


def test_a_simulator_module_beside_the_spec_is_found_without_pythonpath(tmp_path, monkeypatch):
    """`simulator: {name: "mysim:Mine"}` with mysim.py next to the spec failed unless the user set PYTHONPATH=."""
    import sys
    import uuid

    from typer.testing import CliRunner

    from hepsbi.cli import app

    monkeypatch.setattr(sys, "path", list(sys.path))  # restored afterwards, as is PYTHONPATH
    monkeypatch.delenv("PYTHONPATH", raising=False)
    module = f"mysim_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "analysis"
    folder.mkdir()
    (folder / f"{module}.py").write_text("from hepsbi.simulators import GaussianLatent\n\n\nclass Mine(GaussianLatent):\n"
                                         "    pass\n")
    spec = folder / "spec.yaml"
    spec.write_text(f"simulator: {{name: '{module}:Mine'}}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(app, ["check", str(spec)])
    assert result.exit_code == 0 and "valid" in result.output, result.output
    assert str(folder) in sys.path and str(folder) in __import__("os").environ["PYTHONPATH"]
    (folder / "spec.yaml").write_text("simulator: {name: 'nowhere_to_be_found:Mine'}\n")
    result = CliRunner().invoke(app, ["check", str(spec)])
    assert result.exit_code == 2 and "beside the spec file" in " ".join(result.output.split())
