"""Merging event files: rows in order, a self-contained file, stored chunks copied, same inputs → same bytes."""

import h5py
import numpy as np
import pytest

from hepsbi.data.events import Events, EventStore, inspect_events, merge_event_files
from hepsbi.errors import DataError


def _events(n: int, seed: int, dtype: str = "f8") -> Events:
    rng = np.random.default_rng(seed)
    return Events(rng.normal(size=(n, 3)).astype(dtype), rng.normal(size=(n, 2)), rng.normal(size=n) - 0.3,
                  ["a", "b", "c"], ["z0", "z1"], {"seed": seed})


def test_merge_keeps_order_survives_its_inputs_and_merges_again(tmp_path):
    parts = [_events(n, seed) for seed, n in enumerate([500, 0, 7000, 3])]
    for i, e in enumerate(parts):
        e.save(tmp_path / f"c{i}.h5")
    merge_event_files([tmp_path / "c0.h5", tmp_path / "c1.h5"], tmp_path / "m01.h5")
    merge_event_files([tmp_path / "c2.h5", tmp_path / "c3.h5"], tmp_path / "m23.h5")
    # a merged file merges again, beside a plain one
    merged = merge_event_files([tmp_path / "m01.h5", tmp_path / "m23.h5", tmp_path / "c0.h5"], tmp_path / "all.h5",
                               {"note": "test"})
    for p in [*tmp_path.glob("c*.h5"), tmp_path / "m01.h5", tmp_path / "m23.h5"]:
        p.unlink()  # the merged file must not refer to its inputs
    expected = [*parts, parts[0]]
    loaded = Events.load(merged)
    for column in ("x", "z", "weights"):
        np.testing.assert_array_equal(getattr(loaded, column), np.concatenate([getattr(e, column) for e in expected]))
    assert loaded.provenance == {"seed": 0, "note": "test"}
    moved = tmp_path / "elsewhere" / "events.h5"
    moved.parent.mkdir()
    merged.rename(moved)
    streamed = list(EventStore.iterate(moved, chunk_size=2000))
    np.testing.assert_array_equal(np.concatenate([p.weights for p in streamed]), loaded.weights)
    summary = inspect_events(moved)
    assert summary["events"] == 8003
    assert summary["negative_weights"]["count"] == int((loaded.weights < 0).sum())


def test_merge_copies_stored_chunks_and_is_deterministic(tmp_path):
    _events(20_000, 1).save(tmp_path / "a.h5")
    _events(5_000, 2).save(tmp_path / "b.h5")
    merge_event_files([tmp_path / "a.h5", tmp_path / "b.h5"], tmp_path / "m1.h5")
    merge_event_files([tmp_path / "a.h5", tmp_path / "b.h5"], tmp_path / "m2.h5")
    assert (tmp_path / "m1.h5").read_bytes() == (tmp_path / "m2.h5").read_bytes()
    with h5py.File(tmp_path / "a.h5") as src, h5py.File(tmp_path / "m1.h5") as out:
        assert out["x"].is_virtual and out["x"].shape == (25_000, 3)
        copied = out["parts/00000/x"]
        assert copied.compression == src["x"].compression == "gzip" and copied.shuffle
        assert copied.id.read_direct_chunk((0, 0)) == src["x"].id.read_direct_chunk((0, 0))  # bytes, not re-encoded


def test_merge_converts_float32_columns_and_names_mismatched_files(tmp_path):
    _events(10, 1).save(tmp_path / "a.h5")
    _events(10, 2, dtype="f4").save(tmp_path / "b.h5")
    loaded = Events.load(merge_event_files([tmp_path / "a.h5", tmp_path / "b.h5"], tmp_path / "m.h5"))
    assert loaded.x.dtype == np.float64
    np.testing.assert_allclose(loaded.x[10:], _events(10, 2, dtype="f4").x)
    other = _events(10, 3)
    Events(other.x, other.z, other.weights, ["a", "b", "d"], ["z0", "z1"]).save(tmp_path / "c.h5")
    with pytest.raises(DataError, match=r"c.h5: columns .* differ from those of .*a.h5"):
        merge_event_files([tmp_path / "a.h5", tmp_path / "c.h5"], tmp_path / "bad.h5")
    assert not (tmp_path / "bad.h5").exists()
    with pytest.raises(DataError, match="no event files"):
        merge_event_files([], tmp_path / "none.h5")
