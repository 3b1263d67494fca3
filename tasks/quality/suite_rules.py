"""What an expectation suite may say: suites are data. Only the expectation types below, each
with its own arguments of the right JSON kind, reach Great Expectations; no row conditions (the
pandas parser evaluates Python), no suite parameters, regular expressions without nested
unbounded repeats, alternatives inside them or back-references (catastrophic backtracking),
and at most MAX_EXPECTATIONS_ENV expectations. Anything else is refused with one sentence
naming the expectation, the field and what is allowed."""

from __future__ import annotations

import re
from collections.abc import Mapping
from re import _parser as regex_parser  # the standard library's own parse tree of a pattern
from typing import Any

from tasks.settings import setting

MAX_EXPECTATIONS_ENV = "VISION_PIPELINES_MAX_EXPECTATIONS"
MAX_REGEX_CHARS = 500
MAX_LIST_ITEMS = 10_000

NUMBER, BOOL, TEXT, LIST, OBJECT = "number", "boolean", "string", "list", "object"
_COLUMN = {"column": TEXT}
_RANGE = {"min_value": NUMBER, "max_value": NUMBER, "strict_min": BOOL, "strict_max": BOOL}
_MOSTLY = {"mostly": NUMBER}
ARGUMENTS: dict[str, dict[str, str]] = {
    "expect_table_row_count_to_be_between": _RANGE,
    "expect_table_row_count_to_equal": {"value": NUMBER},
    "expect_table_column_count_to_be_between": _RANGE,
    "expect_table_columns_to_match_set": {"column_set": LIST, "exact_match": BOOL},
    "expect_column_to_exist": {**_COLUMN, "column_index": NUMBER},
    "expect_column_values_to_not_be_null": {**_COLUMN, **_MOSTLY},
    "expect_column_values_to_be_null": {**_COLUMN, **_MOSTLY},
    "expect_column_values_to_be_unique": {**_COLUMN, **_MOSTLY},
    "expect_column_values_to_be_in_set": {**_COLUMN, **_MOSTLY, "value_set": LIST},
    "expect_column_values_to_not_be_in_set": {**_COLUMN, **_MOSTLY, "value_set": LIST},
    "expect_column_values_to_be_between": {**_COLUMN, **_MOSTLY, **_RANGE},
    "expect_column_value_lengths_to_be_between": {**_COLUMN, **_MOSTLY, **_RANGE},
    "expect_column_values_to_match_regex": {**_COLUMN, **_MOSTLY, "regex": TEXT},
    "expect_column_values_to_not_match_regex": {**_COLUMN, **_MOSTLY, "regex": TEXT},
    "expect_column_distinct_values_to_be_in_set": {**_COLUMN, "value_set": LIST},
    "expect_column_distinct_values_to_contain_set": {**_COLUMN, "value_set": LIST},
    "expect_column_distinct_values_to_equal_set": {**_COLUMN, "value_set": LIST},
    "expect_column_mean_to_be_between": {**_COLUMN, **_RANGE},
    "expect_column_median_to_be_between": {**_COLUMN, **_RANGE},
    "expect_column_stdev_to_be_between": {**_COLUMN, **_RANGE},
    "expect_column_min_to_be_between": {**_COLUMN, **_RANGE},
    "expect_column_max_to_be_between": {**_COLUMN, **_RANGE},
    "expect_column_sum_to_be_between": {**_COLUMN, **_RANGE},
    "expect_column_unique_value_count_to_be_between": {**_COLUMN, **_RANGE},
    "expect_column_proportion_of_unique_values_to_be_between": {**_COLUMN, **_RANGE},
    "expect_column_kl_divergence_to_be_less_than": {
        **_COLUMN,
        "threshold": NUMBER,
        "partition_object": OBJECT,
        "tail_weight_holdout": NUMBER,
        "internal_weight_holdout": NUMBER,
        "bucketize_data": BOOL,
    },
    "expect_column_quantile_values_to_be_between": {
        **_COLUMN,
        "quantile_ranges": OBJECT,
        "allow_relative_error": BOOL,
    },
}
EXPECTATION_FIELDS = {"type", "kwargs", "meta", "severity", "id", "notes", "description"}
SEVERITIES = {"critical", "warning", "info"}
SUITE_FIELDS = {"name", "meta", "expectations", "id", "notes"}
META = {"compare_with": TEXT, "tolerance": NUMBER, "notes": TEXT}


class RuleError(ValueError):
    """A suite that says more than a suite may (one sentence)."""


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int | float):
        return NUMBER
    if isinstance(value, str):
        return TEXT
    if isinstance(value, list):
        return LIST
    if isinstance(value, dict):
        return OBJECT
    return type(value).__name__


def _plain_data(value: Any, where: str, depth: int = 0) -> None:
    """JSON scalars, short lists and objects of them, a few levels deep: no suite parameters
    (`{"$PARAMETER": ...}`, evaluated by GE) anywhere."""
    if depth > 4:
        raise RuleError(f"{where}: nested deeper than 4 levels")
    if isinstance(value, dict):
        if "$PARAMETER" in value:
            raise RuleError(f"{where}: suite parameters ($PARAMETER) are not allowed")
        for key, item in value.items():
            _plain_data(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        if len(value) > MAX_LIST_ITEMS:
            raise RuleError(f"{where}: {len(value)} items; at most {MAX_LIST_ITEMS}")
        for item in value:
            _plain_data(item, where, depth + 1)
    elif not (value is None or isinstance(value, bool | int | float | str)):
        raise RuleError(f"{where}: {_kind(value)} is not a JSON value")


def _repeats(parsed, inside_unbounded: bool, where: str) -> None:
    """Refuse an unbounded repeat inside another (`(a+)+`, `(a*b?)*`), alternatives inside an
    unbounded repeat (`(a|aa)*`) and back-references: the patterns whose matching time can
    grow exponentially with the input (the step's time limit is the backstop)."""
    for op, arg in parsed:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            _, high, body = arg
            unbounded = high == regex_parser.MAXREPEAT or high > 100
            if unbounded and inside_unbounded:
                raise RuleError(
                    f"{where}: a repeat inside a repeat (catastrophic backtracking); write "
                    "the pattern without nested unbounded quantifiers"
                )
            _repeats(body, inside_unbounded or unbounded, where)
        elif name in ("GROUPREF", "GROUPREF_EXISTS"):
            raise RuleError(f"{where}: back-references are not allowed")
        elif name == "SUBPATTERN":
            _repeats(arg[-1], inside_unbounded, where)
        elif name == "BRANCH":
            if inside_unbounded:
                raise RuleError(
                    f"{where}: alternatives inside a repeat (catastrophic backtracking when "
                    "they overlap); write the pattern without `(a|b)*`"
                )
            for branch in arg[1]:
                _repeats(branch, inside_unbounded, where)
        elif name in ("ASSERT", "ASSERT_NOT"):
            _repeats(arg[1], inside_unbounded, where)


def check_regex(pattern: str, where: str) -> None:
    if len(pattern) > MAX_REGEX_CHARS:
        raise RuleError(f"{where}: {len(pattern)} characters; at most {MAX_REGEX_CHARS}")
    try:
        parsed = regex_parser.parse(pattern)
    except re.error as e:
        raise RuleError(f"{where}: not a regular expression ({e})") from e
    _repeats(parsed, False, where)


def _expectation(item: Any, where: str) -> None:
    if not isinstance(item, Mapping):
        raise RuleError(f"{where}: an expectation is an object")
    kind = item.get("type")
    if kind not in ARGUMENTS:
        raise RuleError(
            f"{where}: expectation type {str(kind)[:80]!r} is not allowed; allowed: "
            + ", ".join(sorted(ARGUMENTS))
        )
    where = f"{where} ({kind})"
    extra = set(item) - EXPECTATION_FIELDS
    if extra:
        raise RuleError(
            f"{where}: field(s) {', '.join(sorted(extra))[:200]} not allowed; allowed: "
            + ", ".join(sorted(EXPECTATION_FIELDS))
        )
    if "severity" in item and item["severity"] not in SEVERITIES:
        raise RuleError(f"{where}: severity {item['severity']!r}; allowed: critical, warning, info")
    kwargs = item.get("kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise RuleError(f"{where}: kwargs is an object")
    allowed = ARGUMENTS[kind]
    for name, value in kwargs.items():
        if name not in allowed:
            raise RuleError(
                f"{where}: argument {str(name)[:80]!r} is not allowed (row conditions and "
                f"evaluated strings never are); allowed: {', '.join(sorted(allowed))}"
            )
        if value is not None and _kind(value) != allowed[name]:
            raise RuleError(
                f"{where}: argument {name} is a {_kind(value)}; expected a {allowed[name]}"
            )
        _plain_data(value, f"{where}: argument {name}")
        if name == "regex":
            check_regex(value, f"{where}: regex")
    meta = item.get("meta") or {}
    if not isinstance(meta, Mapping):
        raise RuleError(f"{where}: meta is an object")
    for name, value in meta.items():
        if name not in META or (value is not None and _kind(value) != META[name]):
            raise RuleError(
                f"{where}: meta {str(name)[:80]!r} not allowed; allowed: compare_with "
                "(string), tolerance (number), notes (string)"
            )


def check_suite(suite: Mapping[str, Any]) -> None:
    """Refuse a suite that is more than data (see the module's docstring)."""
    extra = set(suite) - SUITE_FIELDS
    if extra:
        raise RuleError(
            f"field(s) {', '.join(sorted(extra))[:200]} not allowed in a suite; allowed: "
            + ", ".join(sorted(SUITE_FIELDS))
        )
    _plain_data(suite.get("meta"), "suite meta")
    expectations = suite["expectations"]
    if len(expectations) > (limit := setting(MAX_EXPECTATIONS_ENV)):
        raise RuleError(
            f"{len(expectations)} expectations; at most {limit} ({MAX_EXPECTATIONS_ENV})"
        )
    for i, item in enumerate(expectations):
        _expectation(item, f"expectation {i + 1}")
