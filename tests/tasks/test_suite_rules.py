"""Suites are data (hardening, third pass): only declared expectation types with their own
arguments reach Great Expectations. The audit's attack: a row_condition with the pandas parser
ran `id` on the worker through `python -m tasks.quality`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tasks.quality.suite_rules import MAX_EXPECTATIONS_ENV, RuleError, check_suite

ROOT = Path(__file__).resolve().parents[2]
GE_PYTHON = ROOT / ".venv-ge" / "bin" / "python"
PROFILE = "split,label,source_ref,width,height,mode,bytes\ntrain,0,a.jpg,16,16,RGB,10\n"


def suite(*expectations: dict) -> dict:
    return {"name": "s", "expectations": list(expectations)}


def in_set(**extra) -> dict:
    kwargs = {"column": "label", "value_set": [0, 1], **extra}
    return {"type": "expect_column_values_to_be_in_set", "kwargs": kwargs}


def regex(pattern: str) -> dict:
    kwargs = {"column": "source_ref", "regex": pattern}
    return {"type": "expect_column_values_to_match_regex", "kwargs": kwargs}


def test_the_shipped_suites_pass_the_rules():
    for path in (ROOT / "expectations").glob("*.json"):
        check_suite(json.loads(path.read_text()))


@pytest.mark.parametrize(
    ("expectation", "words"),
    [
        (in_set(row_condition="label>0", condition_parser="pandas"), "'row_condition' is not"),
        (regex("(a+)+$"), "a repeat inside a repeat"),
        (regex("^(a|aa)*$"), "alternatives inside a repeat"),
        (regex(r"(a)\1"), "back-references"),
        (regex("a" * 600), "at most 500"),
        (in_set(value_set={"$PARAMETER": "x"}), "is a object; expected a list"),
        (
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "label", "value_set": [{"$PARAMETER": "now()"}]},
            },
            "suite parameters",
        ),  # fmt: skip
        ({"type": "expect_custom_thing", "kwargs": {}}, "'expect_custom_thing' is not allowed"),
        ({**in_set(), "rendered_content": []}, "rendered_content not allowed"),
        ({**in_set(), "meta": {"compare_with": "champion", "evaluate": "x"}}, "meta 'evaluate'"),
    ],
)
def test_anything_beyond_declared_data_is_refused_with_a_sentence(expectation, words):
    with pytest.raises(RuleError, match="expectation 1") as refused:
        check_suite(suite(expectation))
    assert words in str(refused.value)


def test_regular_expressions_that_match_in_linear_time_pass():
    check_suite(suite(regex(r"^[a-z]+_[0-9]{4}\.(jpg|png)$"), regex("^a+b*$")))


def test_the_number_of_expectations_is_capped(monkeypatch):
    monkeypatch.setenv(MAX_EXPECTATIONS_ENV, "3")
    check_suite(suite(*[in_set()] * 3))
    with pytest.raises(RuleError, match=f"4 expectations; at most 3 \\({MAX_EXPECTATIONS_ENV}"):
        check_suite(suite(*[in_set()] * 4))


def test_the_pandas_row_condition_attack_never_runs(tmp_path):
    marker = tmp_path / "ran"
    attack = in_set(
        row_condition=f'@pd.io.common.os.system("touch {marker}") == 0',
        condition_parser="pandas",
    )
    (tmp_path / "suite.json").write_text(json.dumps(suite(attack)))
    (tmp_path / "profile.csv").write_text(PROFILE)
    done = subprocess.run(
        [str(GE_PYTHON), "-m", "tasks.quality", "--profile", str(tmp_path / "profile.csv"),
         "--suite", str(tmp_path / "suite.json"), "--output", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert "'row_condition' is not allowed" in done.stderr and "Traceback" not in done.stderr
    assert not marker.exists()
