"""Damaged or malformed event and training files: every problem is a DataError naming the file, and the dataset,
column or attribute — never a traceback, never rows shifted across events or a believed "sum of weights: nan"."""

import json

import h5py
import numpy as np
import pytest
import torch

from hepsbi.data.events import Events, EventStore, inspect_events, merge_event_files
from hepsbi.data.training import TrainingData
from hepsbi.errors import DataError
from hepsbi.simulators import GaussianLatent


def events(n: int = 50, seed: int = 0) -> Events:
    rng = np.random.default_rng(seed)
    return Events(rng.normal(size=(n, 4)), rng.normal(size=(n, 2)), rng.uniform(0.5, 1, n), ["a", "b", "c", "d"],
                  ["z0", "z1"], {"seed": seed})


def rewrite(path, name, data):
    with h5py.File(path, "r+") as f:
        del f[name]
        f.create_dataset(name, data=data)


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.h5"
    events().save(path)
    return path


@pytest.mark.parametrize(("name", "data", "says"), [
    ("x", np.zeros((50, 5)), r"dataset 'x' has shape \(50, 5\), expected \(n, 4\)"),
    ("x", np.zeros(50), r"dataset 'x' has shape \(50,\), expected \(n, 4\)"),
    ("weights", np.ones(40), "dataset 'weights' has 40 rows, the others 50"),
    ("weights", np.ones(50, dtype=np.complex128), "dataset 'weights' has type complex128"),
    ("x", np.full((50, 4), b"ab"), "dataset 'x' has type"),
])
def test_malformed_datasets_are_named(good, name, data, says):
    rewrite(good, name, data)
    for reader in (Events.load, inspect_events, lambda p: list(EventStore.iterate(p))):
        with pytest.raises(DataError, match=f"good.h5: {says}"):
            reader(good)


def test_a_merge_refuses_inputs_whose_columns_disagree_with_their_names(tmp_path, good):
    """A chunk with 5 columns of x under 4 names once merged, and readers then shifted rows across events."""
    bad = tmp_path / "bad.h5"
    events(seed=1).save(bad)
    rewrite(bad, "x", np.zeros((50, 5)))
    with pytest.raises(DataError, match=r"bad.h5: dataset 'x' has shape \(50, 5\)"):
        merge_event_files([good, bad], tmp_path / "merged.h5")
    rewrite(bad, "x", np.zeros((50, 4)))
    rewrite(bad, "weights", np.ones(45))
    with pytest.raises(DataError, match="bad.h5: dataset 'weights' has 45 rows"):
        merge_event_files([good, bad], tmp_path / "merged.h5")
    assert not (tmp_path / "merged.h5").exists()


@pytest.mark.parametrize(("name", "row", "column", "says"), [
    ("x", 7, 2, "row 7, 'c'"), ("weights", 3, None, "row 3"), ("z", 11, 1, "row 11, 'z1'"),
])
def test_non_finite_values_are_named_with_row_and_column(good, name, row, column, says):
    with h5py.File(good, "r") as f:
        data = f[name][...]
    data[(row, column) if column is not None else row] = np.nan
    rewrite(good, name, data)
    with pytest.raises(DataError, match=f"good.h5: .*non-finite value nan at {says}"):
        Events.load(good)
    if name != "z":
        with pytest.raises(DataError, match=f"good.h5.*non-finite value nan at {says}"):
            inspect_events(good)


@pytest.mark.parametrize(("attribute", "value", "says"), [
    ("observable_names", None, "missing attribute 'observable_names'"),
    ("provenance", "{not json", "attribute 'provenance' is not JSON"),
    ("schema_version", "abc", "schema_version 'abc' is not supported"),
    ("observable_names", json.dumps("abcd"), "observable_names and latent_names must be lists"),
])
def test_bad_attributes_are_named(good, attribute, value, says):
    with h5py.File(good, "r+") as f:
        if value is None:
            del f.attrs[attribute]
        else:
            f.attrs[attribute] = value
    with pytest.raises(DataError, match=f"good.h5: {says}"):
        Events.load(good)


def test_a_flipped_byte_in_a_compressed_chunk_names_the_file(good):
    with h5py.File(good, "r") as f:
        info = f["x"].id.get_chunk_info(0)
    raw = bytearray(good.read_bytes())
    raw[info.byte_offset + info.size // 2] ^= 0xFF
    good.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="good.h5: dataset 'x' cannot be read .*damaged"):
        Events.load(good)


@pytest.fixture
def training_file(tmp_path):
    path = tmp_path / "training.h5"
    TrainingData.from_simulator(GaussianLatent(), 100, seed=0).save(path)
    return path


@pytest.mark.parametrize(("name", "change", "says"), [
    ("theta", lambda v: np.where(np.arange(len(v))[:, None] == 5, 3.0, v), "theta = 3 is outside its range"),
    ("y", lambda v: np.where(np.arange(len(v)) == 2, 0.5, v), "TrainingData.y must be 0 or 1"),
    ("log_r_xz", lambda v: np.where(np.arange(len(v)) == 9, np.inf, v), "TrainingData.log_r_xz: non-finite value inf at row 9"),
    ("x", lambda v: np.where(np.arange(len(v))[:, None] == 4, np.nan, v), "TrainingData.x: non-finite value nan at row 4, 'x'"),
    ("t_xz", lambda v: v.astype(np.complex64), "dataset 't_xz' has type complex64"),
    ("weights", lambda v: v[:-3], "dataset 'weights' has 97 rows"),
])
def test_training_files_are_checked(training_file, name, change, says):
    with h5py.File(training_file, "r") as f:
        data = f[name][...]
    rewrite(training_file, name, change(data))
    with pytest.raises(DataError, match=f"training.h5: .*{says}"):
        TrainingData.load(training_file)


def test_training_file_attributes(training_file):
    with h5py.File(training_file, "r+") as f:
        f.attrs["parameter_space"] = json.dumps({"parameters": "nope"})
    with pytest.raises(DataError, match="training.h5: attribute 'parameter_space' does not describe a parameter space"):
        TrainingData.load(training_file)
    with h5py.File(training_file, "r+") as f:
        del f.attrs["parameter_space"]
    with pytest.raises(DataError, match="training.h5: missing attribute 'parameter_space'"):
        TrainingData.load(training_file)


def test_integer_columns_are_read_as_numbers(training_file):
    with h5py.File(training_file, "r") as f:
        y = f["y"][...]
    rewrite(training_file, "y", y.astype(np.int32))
    assert torch.equal(TrainingData.load(training_file).y, torch.from_numpy(y))
