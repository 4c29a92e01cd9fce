"""A user simulator that implements only the protocol works end to end."""

import pytest
import torch

from hepsbi import Parameter, ParameterSpace, RatioEstimator, TrainingData
from hepsbi.errors import SimulatorError
from hepsbi.simulators import check_simulator, has_exact_likelihood
from hepsbi.simulators.registry import build_simulator


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

    with pytest.raises(SimulatorError, match=r"missing \['sample', 'joint_log_prob'\]"):
        check_simulator(Broken())


def test_registry_builds_by_name_and_import_path():
    assert type(build_simulator("galton", {"rows": 10, "nails": 15})).__name__ == "GaltonBoard"
    sim = build_simulator(f"{__name__}:Exponential")
    assert sim.space.names == ("log_rate",)
    with pytest.raises(SimulatorError, match=r"no option\(s\) \['bogus'\]"):
        build_simulator("gaussian", {"bogus": 1})
    with pytest.raises(SimulatorError, match="unknown simulator 'nope'"):
        build_simulator("nope")
