"""Manifest validation: line parsing plus column checks with Great Expectations (result kept)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tasks.data.manifest import ManifestError, ManifestRecord, label_format_of, read_manifest
from tasks.problems import Problem, describe

# s3://bucket/key, file:///absolute, or a relative path that neither starts with / nor uses '..'.
REF_PATTERN = r"^(?:s3://[^/]+/.+|file:///.+|(?![/\\])(?!.*(?:^|/)\.\.(?:/|$)).+)$"


def expectation_problems(
    records: Sequence[ManifestRecord], *, num_classes: int | None, result_path: Path | None = None
) -> list[Problem]:
    """Validate refs (not null, allowed form, unique) and single-label class ranges."""
    import great_expectations as gx
    import pandas as pd

    frame = pd.DataFrame(
        {
            "line": [r.line for r in records],
            "ref": [r.ref for r in records],
            "label": [r.label[0] if r.label and len(r.label) == 1 else None for r in records],
        }
    )
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    batch = (
        context.data_sources.add_pandas(name="manifest")
        .add_dataframe_asset(name="records")
        .add_batch_definition_whole_dataframe(name="all")
    )
    suite = context.suites.add(gx.ExpectationSuite(name="manifest"))
    suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column="ref"))
    suite.add_expectation(
        gx.expectations.ExpectColumnValuesToMatchRegex(column="ref", regex=REF_PATTERN)
    )
    suite.add_expectation(gx.expectations.ExpectColumnValuesToBeUnique(column="ref"))
    if num_classes and frame["label"].notna().any():
        suite.add_expectation(
            gx.expectations.ExpectColumnValuesToBeBetween(
                column="label", min_value=0, max_value=num_classes - 1
            )
        )
    result = batch.get_batch(batch_parameters={"dataframe": frame}).validate(
        suite,
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["line"]},
    )
    if result_path is not None:
        result_path.parent.mkdir(parents=True, exist_ok=True)
        result_path.write_text(json.dumps(result.to_json_dict(), indent=2, default=str) + "\n")
    why = {
        "expect_column_values_to_not_be_null": lambda row: "source reference is empty",
        "expect_column_values_to_match_regex": lambda row: (
            f"reference {row['ref']!r} must be s3://bucket/key, file:///path or a path relative "
            "to the manifest without '..'"
        ),
        "expect_column_values_to_be_unique": lambda row: (
            f"reference {row['ref']!r} appears more than once"
        ),
        "expect_column_values_to_be_between": lambda row: (
            f"label {row['label']:g} is outside 0..{(num_classes or 1) - 1} "
            f"(num_classes={num_classes})"
        ),
    }
    problems = []
    for outcome in result.results:
        if outcome.success:
            continue
        explain = why[outcome.expectation_config.type]
        for row in outcome.result.get("unexpected_index_list") or []:
            problems.append(Problem(int(row["line"]), explain(row)))
    return sorted(problems, key=lambda p: p.line)


def validate_manifest(
    manifest: Path,
    *,
    attribute_names: list[str],
    content_type: str,
    num_classes: int | None,
    segmentation: bool = False,
    result_path: Path | None = None,
) -> list[ManifestRecord]:
    """Every problem of the manifest (parsing and column expectations) in one ManifestError."""
    label_format = label_format_of(content_type)
    records, problems = read_manifest(
        manifest,
        attribute_names=attribute_names,
        segmentation=segmentation,
        multi_label=label_format is not None,
        label_format=label_format or "multi-hot",
        num_classes=num_classes,
    )
    if records:
        problems += expectation_problems(records, num_classes=num_classes, result_path=result_path)
    if problems:
        raise ManifestError(describe(str(manifest), sorted(problems, key=lambda p: p.line)))
    return records
