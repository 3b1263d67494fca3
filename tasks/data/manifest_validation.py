"""Manifest validation in bounded memory: lines parsed one by one, column checks with Great
Expectations on chunks of records, duplicate references found from 8-byte digests (the result is
kept as JSON). Memory does not grow with the manifest beyond 12 bytes a record."""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tasks.atomic import atomic_path
from tasks.data.manifest import ManifestError, ManifestRecord, iter_manifest, parse_options
from tasks.problems import MAX_SHOWN, Problem, ProblemLog

# s3://bucket/key, file:///absolute, or a relative path that neither starts with / nor uses '..'.
REF_PATTERN = r"^(?:s3://[^/]+/.+|file:///.+|(?![/\\])(?!.*(?:^|/)\.\.(?:/|$)).+)$"
CHUNK_RECORDS = 50_000


def _chunks(items: Iterable[ManifestRecord], size: int) -> Iterator[list[ManifestRecord]]:
    chunk: list[ManifestRecord] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _Expectations:
    """Ref form and class range expectations, one Great Expectations suite run per chunk."""

    def __init__(self, num_classes: int | None) -> None:
        import great_expectations as gx

        self.num_classes = num_classes
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = {"globally": False}
        self.batch = (
            context.data_sources.add_pandas(name="manifest")
            .add_dataframe_asset(name="records")
            .add_batch_definition_whole_dataframe(name="chunk")
        )
        self.suite = context.suites.add(gx.ExpectationSuite(name="manifest"))
        self.suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column="ref"))
        self.suite.add_expectation(
            gx.expectations.ExpectColumnValuesToMatchRegex(column="ref", regex=REF_PATTERN)
        )
        if num_classes:
            self.suite.add_expectation(
                gx.expectations.ExpectColumnValuesToBeBetween(
                    column="label", min_value=0, max_value=num_classes - 1
                )
            )

    def why(self, kind: str, row: dict) -> str:
        if kind == "expect_column_values_to_not_be_null":
            return "source reference is empty"
        if kind == "expect_column_values_to_match_regex":
            return (
                f"reference {row['ref']!r} must be s3://bucket/key, file:///path or a path "
                "relative to the manifest without '..'"
            )
        return (
            f"label {float(row['label']):g} is outside 0..{(self.num_classes or 1) - 1} "
            f"(num_classes={self.num_classes})"
        )

    def check(self, chunk: list[ManifestRecord], log: ProblemLog) -> dict:
        """Validate one chunk; its problems go to `log`; the result summary is returned."""
        import pandas as pd

        frame = pd.DataFrame(
            {
                "line": [r.line for r in chunk],
                "ref": [r.ref for r in chunk],
                "label": [r.label[0] if r.label and len(r.label) == 1 else None for r in chunk],
            }
        )
        result = self.batch.get_batch(batch_parameters={"dataframe": frame}).validate(
            self.suite,
            result_format={
                "result_format": "SUMMARY",
                "partial_unexpected_count": MAX_SHOWN,
                "unexpected_index_column_names": ["line"],
            },
        )
        for outcome in result.results:
            if outcome.success:
                continue
            kind = outcome.expectation_config.type
            shown = outcome.result.get("partial_unexpected_index_list") or []
            for row in shown:
                log.add(Problem(int(row["line"]), self.why(kind, row)))
            log.add_unshown(int(outcome.result.get("unexpected_count", 0)) - len(shown))
        return result.to_json_dict()


def _duplicates(manifest: Path, digests: array, lines: array, log: ProblemLog, **options) -> int:
    """Report every line whose reference appears more than once; return how many lines."""
    import numpy as np

    keys = np.frombuffer(digests, dtype=np.uint64)
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    repeated = np.zeros(len(ordered), dtype=bool)
    same = ordered[1:] == ordered[:-1]
    repeated[1:] |= same
    repeated[:-1] |= same
    candidates = set(np.frombuffer(lines, dtype=np.uint32)[order[repeated]].tolist())
    if not candidates:
        return 0
    # Equal digests are confirmed on the references themselves (a second pass, only these lines).
    refs: dict[str, list[int]] = {}
    for item in iter_manifest(manifest, **options):
        if isinstance(item, ManifestRecord) and item.line in candidates:
            refs.setdefault(item.ref, []).append(item.line)
    count = 0
    for ref, where in refs.items():
        if len(where) > 1:
            count += len(where)
            for line in where:
                log.add(Problem(line, f"reference {ref!r} appears more than once"))
    return count


@contextmanager
def _result_file(path: Path | None) -> Iterator[IO[str] | None]:
    if path is None:
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        yield f


def validate_manifest(
    manifest: Path,
    *,
    attribute_names: list[str],
    content_type: str,
    num_classes: int | None,
    segmentation: bool = False,
    result_path: Path | None = None,
) -> int:
    """The number of records; every problem (parsing, column expectations, duplicate
    references) in one ManifestError. The expectation results go to `result_path`."""
    options = parse_options(
        attribute_names=attribute_names,
        content_type=content_type,
        num_classes=num_classes,
        segmentation=segmentation,
    )
    log = ProblemLog()
    digests, lines = array("Q"), array("I")

    def records() -> Iterator[ManifestRecord]:
        for item in iter_manifest(manifest, **options):
            if isinstance(item, Problem):
                log.add(item)
                continue
            # The process's own str hash: equal digests are confirmed on the references.
            digests.append(hash(item.ref) & 0xFFFF_FFFF_FFFF_FFFF)
            lines.append(item.line)
            yield item

    expectations = _Expectations(num_classes)
    # The result is written as the chunks pass, so it stays small in memory too.
    with _result_file(result_path) as out:
        if out:
            out.write('{"chunks": [')
        for i, chunk in enumerate(_chunks(records(), CHUNK_RECORDS)):
            summary = expectations.check(chunk, log)
            if out:
                out.write(("," if i else "") + json.dumps(summary, default=str))
        duplicates = _duplicates(manifest, digests, lines, log, **options)
        if out:
            out.write(
                f'], "records": {len(lines)}, "duplicate_reference_lines": {duplicates}, '
                f'"problems": {log.count}, "success": {json.dumps(log.count == 0)}}}\n'
            )
    if log.count:
        raise ManifestError(log.describe(str(manifest)))
    return len(lines)
