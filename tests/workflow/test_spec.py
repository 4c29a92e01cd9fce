"""Run specs: defaults, round trip, and errors that name the key and value."""

import json

import pytest

from hepsbi.errors import SpecError
from hepsbi.workflow.inputs import prepare
from hepsbi.workflow.spec import RunSpec, load_spec, parse_spec, spec_hash


def test_defaults_and_round_trip():
    spec = parse_spec({"name": "x", "training": {"estimators": [{"method": "carl", "epochs": 5}]}})
    assert spec.data.n_samples == 20_000 and spec.training.estimators[0].training_options() == {"epochs": 5}
    again = RunSpec.model_validate(json.loads(json.dumps(spec.model_dump(mode="json"))))
    assert again == spec and spec_hash(again) == spec_hash(spec)
    schema = RunSpec.model_json_schema()
    assert set(schema["properties"]) == {"name", "simulator", "data", "training", "inference", "report", "execution"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"inference": {"thetatrue": {"theta": 1}}}, r"inference.thetatrue: unknown key"),
        ({"training": {"estimators": [{"epochs": "abc"}]}}, r"training.estimators.0.epochs: .*integer.*'abc'"),
        ({"training": {"estimators": [{"method": "cnf"}]}}, r"training.estimators.0.method: .*'cnf'"),
        ({"data": {"n_samples": -5}}, r"data.n_samples: .*greater than or equal to 2.*-5"),
        ({"bogus": 1}, r"bogus: unknown key"),
    ],
)
def test_schema_errors_name_key_and_value(data, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(data)


def test_semantic_errors_name_key_and_value():
    with pytest.raises(SpecError, match=r"inference.theta_true: theta = 5 is outside its range \[-1, 1\]"):
        prepare(parse_spec({"inference": {"theta_true": {"theta": 5.0}}}))
    with pytest.raises(SpecError, match=r"inference.theta_true: unknown parameter\(s\) \['c_LL'\]"):
        prepare(parse_spec({"inference": {"theta_true": {"c_LL": 0.0}}}))
    with pytest.raises(SpecError, match=r"simulator.options: .*no option\(s\) \['rowz'\]"):
        prepare(parse_spec({"simulator": {"name": "galton", "options": {"rowz": 3}}}))
    with pytest.raises(SpecError, match="training.estimators.1.label: duplicate label 'alices'"):
        prepare(parse_spec({"training": {"estimators": [{}, {}]}}))
    with pytest.raises(SpecError, match="training.estimators.0.label: 'truth' names a likelihood the run compares"):
        prepare(parse_spec({"training": {"estimators": [{"label": "truth"}]}}))


def test_yaml_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(SpecError, match="bad.yaml: not valid YAML"):
        load_spec(bad)
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "none.yaml")
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(SpecError, match="top level must be a mapping"):
        load_spec(listy)


def test_histogram_one_or_more_observables_and_systematics():
    two = parse_spec({"inference": {"histogram": {"observable": ["m_ll", "cos_theta_cs"],
                                                   "bins": [[200, 500, 13000], [-1, 0, 1]]}}})
    assert two.inference.histogram.observables == ["m_ll", "cos_theta_cs"]
    assert two.inference.histogram.edges == [[200, 500, 13000], [-1, 0, 1]]
    one = parse_spec({"inference": {"histogram": {"bins": [200, 500, 13000]}}})
    assert one.inference.histogram.observables == ["m_ll"] and one.inference.histogram.edges == [[200, 500, 13000]]
    with pytest.raises(SpecError, match="inference.histogram: .*one observable with a list of edges"):
        parse_spec({"inference": {"histogram": {"observable": "m_ll", "bins": [[1, 2], [3, 4]]}}})
    with pytest.raises(SpecError, match=r"inference.systematics.0: .*'lumi' \(norm\) needs down"):
        parse_spec({"inference": {"systematics": [{"name": "lumi", "kind": "norm", "up": 1.02}]}})
    with pytest.raises(SpecError, match=r"inference.systematics.0.size"):
        parse_spec({"inference": {"systematics": [{"name": "t", "kind": "shape", "observable": "m_ll", "size": 2}]}})
    lumi = {"name": "lumi", "kind": "norm", "up": 1.02, "down": 0.98}
    with pytest.raises(SpecError, match="inference.systematics: nuisance parameters need a weighted simulator"):
        prepare(parse_spec({"inference": {"systematics": [lumi]}}))


def test_parton_level_flag_and_its_old_name():
    assert parse_spec({}).inference.parton_level is True
    assert parse_spec({"inference": {"parton_level": False}}).inference.parton_level is False
    old = parse_spec({"inference": {"truth": False}})  # specs written before the rename still mean the same
    assert old.inference.parton_level is False and "truth" not in old.model_dump()["inference"]
    with pytest.raises(SpecError, match="inference.parton_level"):
        parse_spec({"inference": {"parton_level": "maybe"}})


def test_method_names_come_from_the_estimator_registry():
    from hepsbi.estimators.registry import RATIO_METHODS

    schema = RunSpec.model_json_schema()
    assert tuple(schema["$defs"]["EstimatorSpec"]["properties"]["method"]["enum"]) == RATIO_METHODS
    with pytest.raises(SpecError, match="training.estimators.0.method"):
        parse_spec({"training": {"estimators": [{"method": "sally"}]}})  # a score method, not a ratio method


def test_estimators_that_must_not_be_balanced_get_the_unbalanced_training_data():
    from pathlib import Path

    from hepsbi.workflow.inputs import UNBALANCED, trainings

    example = load_spec(Path(__file__).resolve().parents[2] / "examples" / "drell_yan_contact.yaml")
    spec = example.model_copy(update={"data": example.data.model_copy(update={"balance": "m_ll"})})
    files = {t.label: t.data for t in trainings(spec)}
    assert files == {"alices": "training.h5", "morphing": UNBALANCED, "sally": "local.h5"}
    plain = spec.model_copy(update={"data": spec.data.model_copy(update={"balance": None})})
    assert {t.label: t.data for t in trainings(plain)}["morphing"] == "training.h5"
    assert {t.label: t.options for t in trainings(spec)}["morphing"] == {"hidden": [64, 64, 64]}  # no alpha, no clip
