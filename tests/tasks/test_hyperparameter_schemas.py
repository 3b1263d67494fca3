"""The form's JSON schema of every hyperparameter accepts what its parser accepts."""

from __future__ import annotations

import jsonschema
import pytest

from tasks.algorithms import ALGORITHMS
from tasks.algorithms.image_classification_tf.hyperparameters import ModelId
from tasks.hyperparameters import Boolean, Choice, Integer, IntegerChoice, Number, Parts, Pattern

PARAMS = [(spec.id, p) for spec in ALGORITHMS.values() for p in spec.hyperparameters]


def _valid(schema, value) -> bool:
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return False
    return True


def _samples(parse):
    """(value in the form, its string to the trainer) pairs around the parser's limits."""
    if isinstance(parse, Integer):
        edges = [v for v in (parse.low, parse.high) if v is not None]
        return [(v + d, str(v + d)) for v in edges for d in (-1, 0, 1)]
    if isinstance(parse, Number):
        return [(v, str(v)) for v in (parse.low - 0.5, parse.low, parse.high, parse.high + 0.5)]
    if isinstance(parse, Choice):
        return [(v, v) for v in parse.values] + [("nope", "nope")]
    if isinstance(parse, IntegerChoice):
        return [(v, str(v)) for v in parse.values] + [(7, "7")]
    if isinstance(parse, Boolean):
        return [(True, "True"), (False, "False")]
    if isinstance(parse, ModelId):
        return [(v, v) for v in parse.values[:3]] + [("nope", "nope")]
    if isinstance(parse, Pattern):
        return [("1,2,3", "1,2,3"), ("3,abc,32", "3,abc,32"), ("10,20", "10,20")]
    raise AssertionError(f"no samples for {parse!r}")


def _agree(param) -> None:
    schema = param.schema
    if param.default is not None:
        assert _valid(schema, param.form_default()), param.default
    for value, text in _samples(param.parse):
        try:
            param.parse(text)
            parses = True
        except ValueError:
            parses = False
        assert _valid(schema, value) == parses, (value, text)


@pytest.mark.parametrize(("algorithm", "param"), PARAMS, ids=lambda v: getattr(v, "name", v))
def test_schema_and_parser_agree(algorithm, param):
    assert param.description, f"{algorithm}: {param.name} has no description"
    if not isinstance(param.parse, Parts):
        _agree(param)
        return
    # A structured value: each part is a form field of its own, the text joins them.
    for part in param.parse.parts:
        _agree(part)
        assert part.description, f"{algorithm}: {param.name}'s {part.name} has no description"
    parts = param.parse.parts
    assert len(param.parse(param.default)) == len(parts)
    not_numbers = ",".join(["abc"] * len(parts))
    for text in (param.default + ",1", param.default.rsplit(",", 1)[0], not_numbers):
        with pytest.raises(ValueError):
            param.parse(text)


@pytest.mark.parametrize("spec", list(ALGORITHMS.values()), ids=lambda s: s.id)
def test_epochs_have_the_deployments_cap(spec):
    """Hardening item 8: `epochs` had no upper bound (a run could hold a GPU for ever)."""
    from tasks.hyperparameters import HyperparameterError, parse_hyperparameters

    raw = {**spec.smallest, "epochs": "10001"}
    with pytest.raises(HyperparameterError, match="from 1 to 10000 .VISION_PIPELINES_MAX_EPOCHS"):
        parse_hyperparameters(raw, spec.hyperparameters)
    assert spec.param("epochs").schema["maximum"] == 10_000


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_a_learning_rate_of_zero_is_refused_by_the_trainer_and_the_form(algorithm):
    """A rate of 0 once trained 10 epochs to chance accuracy and ended "Success"."""
    (rate,) = [p for p in ALGORITHMS[algorithm].hyperparameters if p.name == "learning_rate"]
    with pytest.raises(ValueError):
        rate.parse("0")
    assert rate.allowed == "a number in (0, 1]"
    assert not _valid(rate.schema, 0) and _valid(rate.schema, 1e-6)
