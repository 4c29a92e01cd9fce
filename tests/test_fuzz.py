"""Fuzzing with hypothesis (seeded: the same cases every run, bounded in number): specs — as documents and as
YAML text — and event and training files with random corruptions. The rule: a named hepsbi error or a valid
result; never another exception, and never a hang (every case is bounded)."""

import copy
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hepsbi.data.events import Events, EventStore, inspect_events, merge_event_files
from hepsbi.data.training import TrainingData
from hepsbi.errors import HepsbiError
from hepsbi.simulators import GaussianLatent
from hepsbi.workflow.inputs import prepare
from hepsbi.workflow.spec import RunSpec, load_yaml, parse_spec

FUZZ = settings(derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))

# -- specs ---------------------------------------------------------------------------------------------------------
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.sampled_from(["[/]", "[red]x", "a\x00b", "../x", "/etc", "é", "gaussian", "galton",
                                           "multi_gaussian", "drell_yan", "math:pi", ":Foo", "alices", "carl", "m_ll"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)


def schema_keys() -> dict[str, list[str]]:
    """Every section of the spec and its keys, from the JSON Schema: the fuzzer mostly writes real keys."""
    schema = RunSpec.model_json_schema()
    sections = {}
    for name, prop in schema["properties"].items():
        ref = prop.get("$ref", "").rsplit("/", 1)[-1]
        sections[name] = list(schema["$defs"].get(ref, {}).get("properties", {}))
    return sections


SECTIONS = schema_keys()
SIMULATOR_OPTIONS = ["mu0", "sigma_z", "sigma_x", "low", "high", "rows", "nails", "strength", "bounds", "mixing_seed",
                     "n_events", "n_slices", "c_max", "parameters", "observables", "settings", "lepton", "m_min", "seed"]


@st.composite
def documents(draw: st.DrawFn) -> dict:
    doc: dict = {}
    for section in draw(st.lists(st.sampled_from([*SECTIONS, "junk"]), max_size=5, unique=True)):
        keys = SECTIONS.get(section, []) + ["junk"]
        body = {k: draw(VALUES) for k in draw(st.lists(st.sampled_from(keys), max_size=4, unique=True))}
        if section == "simulator" and draw(st.booleans()):
            body["name"] = draw(st.sampled_from(["gaussian", "galton", "multi_gaussian", "drell_yan", "nope", "math:pi"]))
            body["options"] = {k: draw(VALUES) for k in draw(st.lists(st.sampled_from(SIMULATOR_OPTIONS), max_size=3, unique=True))}
        if section == "training" and draw(st.booleans()):
            body["estimators"] = [{k: draw(VALUES) for k in draw(st.lists(st.sampled_from(
                ["method", "label", "hidden", "epochs", "alpha", "ensemble", "seed"]), max_size=3, unique=True))}]
        doc[section] = body if draw(st.integers(0, 9)) else draw(VALUES)
    return doc


EXAMPLES = [load_yaml(p.read_text(), p.name) for p in sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))]


def _leaves(node: object, path: tuple = ()) -> list[tuple]:
    if isinstance(node, dict):
        return [leaf for k, v in node.items() for leaf in _leaves(v, (*path, k))] or [path]
    if isinstance(node, list):
        return [leaf for i, v in enumerate(node) for leaf in _leaves(v, (*path, i))] or [path]
    return [path]


@st.composite
def mutated_examples(draw: st.DrawFn) -> dict:
    """An example spec with one to three of its values replaced by fuzz (mostly near-valid specs)."""
    doc = copy.deepcopy(draw(st.sampled_from(EXAMPLES)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_leaves(doc)))
        if not path:
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = draw(st.one_of(VALUES, _near(parent[path[-1]])))
    return doc


def _near(value: object) -> st.SearchStrategy:
    """Values of the same type as ``value``: mostly valid specs, with edge cases of range."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.one_of(st.integers(-3, 3), st.integers(0, 10 * abs(value) + 10), st.just(value))
    if isinstance(value, float) and np.isfinite(value) and abs(value) < 1e300:
        return st.one_of(st.floats(-2 * abs(value) - 1, 2 * abs(value) + 1), st.just(0.0), st.just(value))
    if isinstance(value, str):
        return st.one_of(st.just(value), st.sampled_from(["m_ll", "y_ll", "alices", "carl", "rascal", "theta", "mu"]))
    return st.just(value)


@settings(FUZZ, max_examples=1000)
@given(st.one_of(documents(), mutated_examples()))
def test_fuzzed_spec_documents_give_a_spec_or_a_named_error(doc):
    try:
        spec = parse_spec(doc)
    except HepsbiError as exc:
        event(f"refused by the spec: {type(exc).__name__}")
        return
    try:
        prepare(spec)  # builds the simulator and checks θ_true, labels, histogram, systematics
        event("valid: simulator built")
    except HepsbiError as exc:
        event(f"valid spec, refused by prepare: {type(exc).__name__}")


@settings(FUZZ, max_examples=300)
@given(st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
    st.lists(st.sampled_from(["a: &a [1, 2]", "b: [*a, *a]", "name: x", "name: y", "simulator: {name: galton}",
                              "data: {n_samples: .nan}", "  - x", ": :", "{", "[", "!!python/object:os.system x",
                              "? [1]\n: 2", "inference: {theta_true: {theta: 1e999}}"]), max_size=6).map("\n".join),
))
def test_fuzzed_yaml_text_gives_a_spec_or_a_named_error(text):
    try:
        parse_spec(load_yaml(text, "fuzz"), "fuzz")
    except HepsbiError:
        pass


# -- files ---------------------------------------------------------------------------------------------------------
def _events(n: int = 30) -> Events:
    rng = np.random.default_rng(0)
    return Events(rng.normal(size=(n, 3)), rng.normal(size=(n, 2)), rng.uniform(0.5, 1, n), ["a", "b", "c"], ["z0", "z1"])


def _array(shape: tuple[int, ...], kind: str, fill: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # NaN cast to an integer type: whatever it becomes is the corruption
        return np.full(shape, fill).astype(kind)


ARRAYS = st.builds(
    _array,
    st.lists(st.integers(0, 40), min_size=0, max_size=3).map(tuple),
    st.sampled_from(["f8", "f4", "i4", "u1", "c8", "S3", "?"]),
    st.sampled_from([0.0, 1.0, -2.5, np.nan, np.inf, -np.inf]),
)
ATTRIBUTES = st.one_of(st.text(max_size=30), st.integers(-5, 5), st.sampled_from(
    ['["a", "b", "c"]', '["a"]', "[1, 2]", "{}", '{"a": 1}', "null", "not json", '"abc"']))
CORRUPTIONS = st.one_of(
    st.tuples(st.just("dataset"), st.sampled_from(["x", "z", "weights", "theta", "y", "log_r_xz", "t_xz"]), ARRAYS),
    st.tuples(st.just("delete"), st.sampled_from(["x", "z", "weights", "theta", "y", "t_xz"]), st.none()),
    st.tuples(st.just("attribute"), st.sampled_from(["observable_names", "latent_names", "provenance", "schema_version",
                                                      "format", "parameter_space"]), ATTRIBUTES),
    st.tuples(st.just("truncate"), st.none(), st.floats(0.0, 0.99)),
    st.tuples(st.just("flip"), st.none(), st.floats(0.3, 0.99)),
)


def corrupt(path: Path, corruption: tuple) -> None:
    kind, name, value = corruption
    if kind in ("dataset", "delete", "attribute"):
        with h5py.File(path, "r+") as f:
            if kind == "attribute":
                f.attrs[name] = value
            elif name in f:
                del f[name]
                if kind == "dataset":
                    f.create_dataset(name, data=value)
    elif kind == "truncate":
        raw = path.read_bytes()
        path.write_bytes(raw[: int(len(raw) * value)])
    else:  # flip one byte in the data region (after the superblock and object headers)
        raw = bytearray(path.read_bytes())
        if raw:
            raw[int(len(raw) * value)] ^= 0xFF
            path.write_bytes(bytes(raw))


def valid_or_named(read, what: str) -> None:  # noqa: ANN001
    try:
        read()
        event(f"{what}: read")
    except HepsbiError as exc:
        event(f"{what}: {type(exc).__name__}")


@settings(FUZZ, max_examples=150)
@given(st.lists(CORRUPTIONS, min_size=1, max_size=3))
def test_fuzzed_event_files_give_events_or_a_named_error(corruptions):
    with tempfile.TemporaryDirectory() as tmp:
        good, bad = Path(tmp, "good.h5"), Path(tmp, "bad.h5")
        _events().save(good)
        _events().save(bad)
        for corruption in corruptions:
            try:
                corrupt(bad, corruption)
            except (OSError, KeyError, ValueError, TypeError):
                break  # the file is already past being modified by h5py: read what is there
        valid_or_named(lambda: Events.load(bad), "load")
        valid_or_named(lambda: inspect_events(bad), "inspect")
        valid_or_named(lambda: list(EventStore.iterate(bad, chunk_size=7)), "iterate")
        valid_or_named(lambda: Events.load(merge_event_files([good, bad], Path(tmp, "merged.h5"))), "merge")
        assert sorted(p.name for p in Path(tmp).iterdir()) in (["bad.h5", "good.h5"], ["bad.h5", "good.h5", "merged.h5"])


@pytest.fixture(scope="module")
def training_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        TrainingData.from_simulator(GaussianLatent(), 40, seed=0).save(Path(tmp, "t.h5"))
        return Path(tmp, "t.h5").read_bytes()


@settings(FUZZ, max_examples=150)
@given(corruptions=st.lists(CORRUPTIONS, min_size=1, max_size=3))
def test_fuzzed_training_files_give_data_or_a_named_error(training_bytes, corruptions):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "t.h5")
        path.write_bytes(training_bytes)
        for corruption in corruptions:
            try:
                corrupt(path, corruption)
            except (OSError, KeyError, ValueError, TypeError):
                break
        valid_or_named(lambda: TrainingData.load(path), "load")
