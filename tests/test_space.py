import pytest
import torch

from hepsbi.errors import ParameterError
from hepsbi.space import BenchmarkSampler, GridSampler, Parameter, ParameterSpace, PriorSampler


def make_space() -> ParameterSpace:
    return ParameterSpace(
        [Parameter("a", -1.0, 2.0, reference=0.5), Parameter("b", 0.0, 1.0, reference=0.0, prior="normal", prior_width=0.3)],
        benchmarks={"bsm": {"a": 1.5}},
    )


def test_point_from_mapping_fills_reference_and_checks_range():
    space = make_space()
    assert space.point({"b": 0.25}).tolist() == [0.5, 0.25]
    with pytest.raises(ParameterError, match=r"a = 3 is outside its range \[-1, 2\]"):
        space.point({"a": 3.0})
    with pytest.raises(ParameterError, match="unknown parameter"):
        space.point({"c": 0.0})


def test_prior_sampling_respects_ranges_and_shapes(gen):
    space = make_space()
    theta = PriorSampler(space)(5000, gen)
    assert theta.shape == (5000, 2)
    space.check(theta)
    # uniform a: mean of U(-1, 2) is 0.5; truncated normal b: mass piles near the reference 0
    assert abs(theta[:, 0].mean().item() - 0.5) < 0.05
    assert (theta[:, 1] < 0.3).float().mean() > 0.6


def test_grid_and_benchmark_samplers(gen):
    space = make_space()
    theta = GridSampler(space, points=3)(100, gen)
    assert set(theta[:, 0].tolist()) <= {-1.0, 0.5, 2.0}
    bench = BenchmarkSampler(space)(10, gen)
    assert torch.all(bench == torch.tensor([1.5, 0.0], dtype=torch.float64))


def test_invalid_parameters_are_errors():
    with pytest.raises(ParameterError, match="low must be < high"):
        Parameter("x", 1.0, 0.0)
    with pytest.raises(ParameterError, match="reference"):
        Parameter("x", 0.0, 1.0, reference=2.0)
    with pytest.raises(ParameterError, match="unique"):
        ParameterSpace([Parameter("x", 0, 1), Parameter("x", 0, 1)])


def test_dict_round_trip():
    space = make_space()
    assert ParameterSpace.from_dict(space.to_dict()) == space


def test_box_sampler_draws_inside_its_box_and_checks_it():
    from hepsbi.errors import ParameterError
    from hepsbi.space import BoxSampler

    space = ParameterSpace([Parameter("a", -1.0, 1.0), Parameter("b", 0.0, 5.0)])
    theta = BoxSampler(space, (-0.2, 1.0), (0.4, 1.5))(10_000, torch.Generator().manual_seed(0))
    assert theta.shape == (10_000, 2)
    assert theta[:, 0].min() >= -0.2 and theta[:, 0].max() <= 0.4 and theta[:, 1].min() >= 1.0 and theta[:, 1].max() <= 1.5
    assert abs(theta[:, 0].mean().item() - 0.1) < 0.01  # uniform
    with pytest.raises(ParameterError, match="high must exceed"):
        BoxSampler(space, (0.4, 1.0), (0.2, 1.5))
    with pytest.raises(ParameterError, match="outside"):
        BoxSampler(space, (-2.0, 1.0), (0.2, 1.5))
