"""Validate a run's data profile with the pipeline's expectation suite (Great Expectations'
own suite format), against the champion's profile for the drift expectations; write GE's
validation result, its Data Docs page and our summary (`quality.json`).

A drift expectation is one whose `meta` says `{"compare_with": "champion"}`: its reference
(a KL divergence's partition, a quantile expectation's value ranges, widened by the meta's
relative `tolerance`) is filled from the champion's profile; without a champion it is skipped.
Each expectation's `severity` (GE's own field) says what its failure does: `critical` stops
the run before training, `warning` and `info` are reported.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.contract import QUALITY
from tasks.quality.data_docs import render_page
from tasks.quality.suite_rules import RuleError, check_suite

VALIDATION = "validation.json"
PROFILE = "profile.csv.gz"
"""The whole profile, kept with the run (and with the champion when it is promoted)."""
DATA_DOCS = "data_docs/index.html"
DRIFT_KEY = "compare_with"
IGNORED_KWARGS = {"column", "batch_id", "result_format", "catch_exceptions"}


class SuiteError(ValueError):
    """A suite file that is not a GE expectation suite we can run."""


def read_profile(paths: Iterable[Path]) -> pd.DataFrame:
    """Every part of a profile (one per data-prep step) as one table."""
    frames = [pd.read_csv(p, dtype={"classes": str, "pixel_share": str}) for p in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def read_suite(path: Path) -> dict[str, Any]:
    try:
        suite = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SuiteError(f"{path}: not a readable JSON expectation suite ({e})") from e
    if not isinstance(suite, dict) or not isinstance(suite.get("expectations"), list):
        raise SuiteError(f"{path}: an expectation suite is an object with an 'expectations' list")
    try:
        check_suite(suite)
    except RuleError as e:
        raise SuiteError(str(e)) from e
    return suite


def _plain(value: Any) -> Any:
    """numpy scalars and arrays inside GE's results as plain Python (JSON and its renderer)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def distribution(frame: pd.DataFrame, column: str) -> dict[str, float]:
    """The share of each value of `column` (what the report shows side by side)."""
    if frame.empty or column not in frame:
        return {}
    shares = frame[column].value_counts(normalize=True).sort_index()
    return {str(k): round(float(v), 6) for k, v in shares.items()}


def _against_champion(expectation: dict[str, Any], champion: pd.DataFrame) -> dict[str, Any] | None:
    """A drift expectation with its reference filled from the champion's profile."""
    filled = copy.deepcopy(expectation)
    kwargs, meta = filled.setdefault("kwargs", {}), filled.get("meta") or {}
    column = kwargs.get("column")
    if column not in champion:
        raise SuiteError(
            f"drift expectation {filled['type']}: column {column!r} not in the profile"
        )
    values = champion[column].dropna()
    if filled["type"] == "expect_column_kl_divergence_to_be_less_than":
        shares = values.value_counts(normalize=True).sort_index()
        kwargs["partition_object"] = {
            "values": [_plain(v) for v in shares.index],
            "weights": [float(w) for w in shares.values],
        }
    elif filled["type"] == "expect_column_quantile_values_to_be_between":
        tolerance = float(meta.get("tolerance", 0.1))
        quantiles = (kwargs.get("quantile_ranges") or {}).get("quantiles") or [0.05, 0.5, 0.95]
        reference = [float(values.quantile(q)) for q in quantiles]
        kwargs["quantile_ranges"] = {
            "quantiles": quantiles,
            "value_ranges": [[r * (1 - tolerance), r * (1 + tolerance)] for r in reference],
        }
    else:
        raise SuiteError(
            f"{filled['type']} cannot compare with the champion; drift expectations are "
            "expect_column_kl_divergence_to_be_less_than and "
            "expect_column_quantile_values_to_be_between"
        )
    return filled


def _allowed(kwargs: Mapping[str, Any]) -> str:
    shown = {k: v for k, v in kwargs.items() if k not in IGNORED_KWARGS and v is not None}
    text = ", ".join(f"{k} {json.dumps(_plain(v))}" for k, v in shown.items())
    return text[:300] + ("..." if len(text) > 300 else "")


def _observed(result: Mapping[str, Any]) -> str:
    if "observed_value" in result:
        return json.dumps(_plain(result["observed_value"]))
    if "unexpected_count" in result:
        examples = json.dumps(_plain(result.get("partial_unexpected_list", [])[:5]))
        return (
            f"{result['unexpected_count']} of {result.get('element_count')} values outside, "
            f"e.g. {examples}"
        )
    return json.dumps(_plain(result))[:200]


def sentence(outcome: Mapping[str, Any]) -> str:
    """One failed expectation as the log and the report say it."""
    where = f" on column {outcome['column']}" if outcome.get("column") else ""
    return (
        f"expectation {outcome['expectation']}{where} ({outcome['severity']}) failed: observed "
        f"{outcome['observed']}; expected {outcome['expected'] or 'see the suite'}"
    )


def validate(
    profile: pd.DataFrame,
    suite: Mapping[str, Any],
    output: Path,
    *,
    champion: pd.DataFrame | None = None,
    run_name: str | None = None,
) -> dict[str, Any]:
    """Run the suite on the profile; write VALIDATION, DATA_DOCS and SUMMARY under `output`
    and return the summary. `run_name` (the Airflow run) names the validation in Data Docs."""
    import great_expectations as gx

    expectations, skipped = [], []
    for expectation in suite["expectations"]:
        if (expectation.get("meta") or {}).get(DRIFT_KEY) == "champion":
            if champion is None or champion.empty:
                skipped.append(f"{expectation['type']}: no champion profile to compare with")
                continue
            expectation = _against_champion(expectation, champion)
        expectations.append(expectation)
    try:
        gx_suite = gx.ExpectationSuite(
            name=suite.get("name") or "suite", expectations=expectations, meta=suite.get("meta")
        )
    except Exception as e:  # GE names the expectation and the field it refuses
        raise SuiteError(f"not a valid expectation suite: {e}") from e
    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("profile")
        .add_dataframe_asset("profile")
        .add_batch_definition_whole_dataframe("profile")
        .get_batch(batch_parameters={"dataframe": profile})
    )
    result = batch.validate(gx_suite, result_format="SUMMARY")
    if run_name:  # else Data Docs shows "Run Name: __none__"
        from great_expectations.core.run_identifier import RunIdentifier

        result.meta["run_id"] = RunIdentifier(run_name=run_name, run_time=datetime.now(UTC))
    for item in result.results:
        item.result = _plain(item.result)
        item.success = bool(item.success)
    result.success = bool(result.success)
    output.mkdir(parents=True, exist_ok=True)
    profile.to_csv(output / PROFILE, index=False)
    (output / VALIDATION).write_text(json.dumps(_plain(result.to_json_dict()), indent=2) + "\n")
    (output / DATA_DOCS).parent.mkdir(parents=True, exist_ok=True)
    (output / DATA_DOCS).write_text(render_page(result), encoding="utf-8")

    outcomes = []
    for item in result.results:
        config = item.expectation_config
        kwargs = dict(config.kwargs)
        outcome = {
            "expectation": config.type,
            "column": kwargs.get("column"),
            "severity": str(getattr(config.severity, "value", config.severity)),
            "success": item.success,
            "drift": (config.meta or {}).get(DRIFT_KEY) == "champion",
            "observed": _observed(item.result),
            "expected": _allowed(kwargs),
        }
        if item.exception_info and item.exception_info.get("raised_exception"):
            outcome["observed"] = "error: " + str(item.exception_info.get("exception_message"))
        outcome["sentence"] = None if item.success else sentence(outcome)
        outcomes.append(outcome)
    failed = [o for o in outcomes if not o["success"]]
    columns = {o["column"] for o in outcomes if o["drift"] and o["column"]}
    summary = {
        "suite": suite.get("name"),
        "success": not failed,
        "critical": [o["sentence"] for o in failed if o["severity"] == "critical"],
        "warnings": [o["sentence"] for o in failed if o["severity"] != "critical"],
        "drift": [o["sentence"] for o in failed if o["drift"]],
        "results": outcomes,
        "skipped": skipped,
        "rows": len(profile),
        "distributions": {
            c: {"run": distribution(profile, c), "champion": distribution(champion, c)}
            for c in sorted(columns)
        },
        "validation": VALIDATION,
        "data_docs": DATA_DOCS,
    }
    (output / QUALITY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def run(
    profiles: Sequence[Path],
    suite_path: Path,
    output: Path,
    champion: Path | None,
    run_name: str | None = None,
) -> dict[str, Any]:
    """validate() from files."""
    return validate(
        read_profile(profiles),
        read_suite(suite_path),
        output,
        champion=read_profile([champion]) if champion else None,
        run_name=run_name,
    )
