"""TrainingData: construction from simulators, HDF5 round trip, clear errors."""

import h5py
import numpy as np
import pytest
import torch

from hepsbi import TrainingData
from hepsbi.errors import DataError, ParameterError
from hepsbi.simulators import GaltonBoard, MultiParameterGaussian, joint_log_ratio


def test_from_simulator_labels_and_gold():
    sim = MultiParameterGaussian()
    data = TrainingData.from_simulator(sim, 1000, seed=2)
    assert data.x.shape == (1000, 5) and data.theta.shape == (1000, 2) and data.t_xz.shape == (1000, 2)
    assert data.y.sum().item() == 500
    assert data.observable_names == ["x0", "x1", "x2", "x3", "x4"]
    again = TrainingData.from_simulator(sim, 1000, seed=2)
    assert torch.equal(data.x, again.x) and torch.equal(data.t_xz, again.t_xz)


def test_local_data_sits_at_one_point():
    data = TrainingData.local(GaltonBoard(), 300, at={"theta": 0.2}, seed=1)
    assert torch.all(data.theta == 0.2) and torch.all(data.y == 1)


def test_simulations_are_rows_drawn_at_their_theta():
    """Black-box (θ, x) pairs become y = 1 rows with unit weight and no gold; bad shapes and θ outside the space are
    named errors."""
    sim = MultiParameterGaussian()
    gen = torch.Generator().manual_seed(0)
    theta = sim.space.sample_prior(50, gen)
    x = torch.randn(50, 5, generator=gen, dtype=torch.float64)
    data = TrainingData.simulations(theta, x, sim.space, observable_names=list("abcde"))
    assert torch.equal(data.x, x) and torch.equal(data.theta, theta) and data.observable_names == list("abcde")
    assert torch.all(data.y == 1) and torch.all(data.weights == 1) and not data.t_xz.any() and not data.log_r_xz.any()
    with pytest.raises(DataError, match="NPE.fit: theta must be"):
        TrainingData.simulations(theta, x[:10], sim.space, what="NPE.fit")
    outside = theta.clone()
    outside[0, 0] = sim.space.high[0] + 1.0
    with pytest.raises(ParameterError, match="simulations theta: theta1 = 2 is outside its range"):
        TrainingData.simulations(outside, x, sim.space)


def test_hdf5_round_trip_keeps_negative_weights(tmp_path):
    data = TrainingData.from_simulator(GaltonBoard(), 400, seed=3)
    data.weights = torch.linspace(-1.0, 3.0, 400, dtype=torch.float64)
    path = data.save(tmp_path / "train.h5")
    loaded = TrainingData.load(path)
    for name in ("x", "theta", "y", "log_r_xz", "t_xz", "weights"):
        assert torch.equal(getattr(loaded, name), getattr(data, name)), name
    assert (loaded.weights < 0).sum() == (data.weights < 0).sum() > 0
    assert loaded.space == data.space and loaded.provenance["seed"] == 3
    with h5py.File(path) as f:
        assert f.attrs["format"] == "hepsbi.TrainingData" and f.attrs["schema_version"] == 1
    assert list(tmp_path.iterdir()) == [path]  # no temporary files left behind


def test_load_errors_name_the_file_and_problem(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        TrainingData.load(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    with pytest.raises(DataError, match="junk.h5: not an HDF5 file"):
        TrainingData.load(junk)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["format"] = "something.else"
    with pytest.raises(DataError, match="format attribute is 'something.else'"):
        TrainingData.load(other)
    data = TrainingData.from_simulator(GaltonBoard(), 10, seed=0)
    path = data.save(tmp_path / "cut.h5")
    with h5py.File(path, "a") as f:
        del f["t_xz"]
    with pytest.raises(DataError, match=r"missing dataset\(s\) \['t_xz'\]"):
        TrainingData.load(path)


def test_failed_save_leaves_previous_file_intact(tmp_path, monkeypatch):
    data = TrainingData.from_simulator(GaltonBoard(), 10, seed=0)
    path = data.save(tmp_path / "keep.h5")
    before = path.read_bytes()
    bad = TrainingData.from_simulator(GaltonBoard(), 10, seed=1)
    bad.provenance = {"unserialisable": object()}
    with pytest.raises(TypeError):
        bad.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.h5"]


def test_shape_mismatch_is_an_error():
    data = TrainingData.from_simulator(GaltonBoard(), 10, seed=0)
    with pytest.raises(DataError, match="TrainingData.t_xz has shape"):
        TrainingData(data.x, data.theta, data.y, data.log_r_xz, torch.zeros(10, 3), data.weights, data.space)


def test_joint_log_ratio_column_is_consistent():
    sim = GaltonBoard()
    gen = torch.Generator().manual_seed(0)
    x, z = sim.sample(torch.zeros(5, 1, dtype=torch.float64), gen)
    a = joint_log_ratio(sim, z, torch.tensor([0.3]), torch.tensor([0.0]))
    b = joint_log_ratio(sim, z, torch.tensor([0.0]), torch.tensor([0.3]))
    np.testing.assert_allclose(a.numpy(), -b.numpy())


def test_balancing_equalises_reference_weight_per_bin_and_keeps_the_ratio():
    data = TrainingData.from_simulator(GaltonBoard(), 4000, seed=5)
    data.weights = torch.where(data.x[:, 0] > 10, 0.01, 1.0).to(torch.float64)  # a sparse-weight region
    balanced = data.balanced("slot", bins=4)
    ref = balanced.y == 0
    # every event of a bin gets the same factor h(x), for both classes
    ratio = balanced.weights / data.weights
    for slot in torch.unique(data.x[:, 0]):
        in_slot = data.x[:, 0] == slot
        assert torch.allclose(ratio[in_slot], ratio[in_slot][0])
    # the reference weight is now spread across the bins instead of sitting where the weights are large
    high = balanced.weights[ref & (data.x[:, 0] > 10)].sum() / balanced.weights[ref].sum()
    assert 0.2 < high.item() < 0.8
    assert balanced.provenance["balanced"] == {"observable": "slot", "bins": 4}
    with pytest.raises(DataError, match="no observable 'mass'"):
        data.balanced("mass")


def test_the_repr_says_what_the_data_is_without_printing_the_rows():
    data = TrainingData.from_simulator(GaltonBoard(), 5000, seed=5)
    text = repr(data)
    assert text == "TrainingData(5000 rows, x (1,) ['slot'], θ ['theta'], 50% at θ (y = 1), Σ weights 5000)"
