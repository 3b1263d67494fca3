"""Manifest validation in one pass and bounded memory: each line parsed, then each record's
reference form and class range checked as it passes, duplicate references found from 8-byte
digests. Memory grows by about 30 bytes a record (digest, line number and their sort).

The result file keeps Great Expectations' vocabulary (expectation types, `unexpected_count`,
`partial_unexpected_index_list`), but the checks are ours: importing Great Expectations alone
took 228 MiB and its validation of 1M lines was slower than this pass (docs/spec-notes.md)."""

from __future__ import annotations

import json
import re
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tasks.atomic import atomic_write_text
from tasks.data.augmented_manifest import (
    ManifestError,
    ManifestRecord,
    iter_manifest,
    parse_options,
)
from tasks.problems import MAX_SHOWN, Problem, ProblemLog

# s3://bucket/key, file:///absolute, or a relative path that neither starts with / nor uses '..'.
REF_PATTERN = r"^(?:s3://[^/]+/.+|file:///.+|(?![/\\])(?!.*(?:^|/)\.\.(?:/|$)).+)$"
_REF = re.compile(REF_PATTERN)


@dataclass
class Expectation:
    """One expectation over the records: its failures counted, the first lines kept."""

    type: str
    kwargs: dict
    unexpected: Callable[[ManifestRecord], str | None] | None = None
    """For a column expectation, the reason a record fails it, or None."""
    unexpected_count: int = 0
    lines: list[int] = field(default_factory=list)

    def fail(self, line: int, why: str, log: ProblemLog) -> None:
        self.unexpected_count += 1
        if len(self.lines) < MAX_SHOWN:
            self.lines.append(line)
        log.add(Problem(line, why))

    def check(self, record: ManifestRecord, log: ProblemLog) -> None:
        why = self.unexpected(record)
        if why is not None:
            self.fail(record.line, why, log)

    def result(self, element_count: int) -> dict:
        """The outcome as Great Expectations' SUMMARY result names it (lines as the index)."""
        return {
            "expectation_type": self.type,
            "kwargs": self.kwargs,
            "success": self.unexpected_count == 0,
            "result": {
                "element_count": element_count,
                "unexpected_count": self.unexpected_count,
                "partial_unexpected_index_list": self.lines,
            },
        }


def _ref_form(record: ManifestRecord) -> str | None:
    if _REF.fullmatch(record.ref):
        return None
    return (
        f"reference {record.ref!r} must be s3://bucket/key, file:///path or a path "
        "relative to the manifest without '..'"
    )


def _class_range(num_classes: int) -> Callable[[ManifestRecord], str | None]:
    def outside(record: ManifestRecord) -> str | None:
        label = record.label[0] if record.label else 0
        if label <= num_classes - 1:
            return None
        return f"label {label:g} is outside 0..{num_classes - 1} (num_classes={num_classes})"

    return outside


def expectations(num_classes: int | None, multi_label: bool) -> list[Expectation]:
    """The column expectations every record must meet (besides parsing and unique references)."""
    found = [
        Expectation(
            "expect_column_values_to_match_regex",
            {"column": "ref", "regex": REF_PATTERN},
            _ref_form,
        )
    ]
    # Multi-label vectors are range-checked by the parser (their length or their class ids).
    if num_classes and not multi_label:
        found.append(
            Expectation(
                "expect_column_values_to_be_between",
                {"column": "label", "min_value": 0, "max_value": num_classes - 1},
                _class_range(num_classes),
            )
        )
    return found


def _duplicates(
    manifest: Path, digests: array, lines: array, unique: Expectation, log: ProblemLog, **options
) -> None:
    """Fail `unique` for every line whose reference appears more than once."""
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
        return
    # Equal digests are confirmed on the references themselves (a second pass, only these lines).
    refs: dict[str, list[int]] = {}
    for item in iter_manifest(manifest, **options):
        if isinstance(item, ManifestRecord) and item.line in candidates:
            refs.setdefault(item.ref, []).append(item.line)
    for ref, where in refs.items():
        if len(where) > 1:
            for line in where:
                unique.fail(line, f"reference {ref!r} appears more than once", log)


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
    checks = expectations(num_classes, options["multi_label"])
    unique = Expectation("expect_column_values_to_be_unique", {"column": "ref"})
    digests, lines = array("Q"), array("I")
    for item in iter_manifest(manifest, **options):
        if isinstance(item, Problem):
            log.add(item)
            continue
        for check in checks:
            check.check(item, log)
        # The process's own str hash: equal digests are confirmed on the references.
        digests.append(hash(item.ref) & 0xFFFF_FFFF_FFFF_FFFF)
        lines.append(item.line)
    _duplicates(manifest, digests, lines, unique, log, **options)
    if result_path is not None:
        expected = [*checks, unique]
        document = {
            "success": log.count == 0,
            "records": len(lines),
            "unparsed_lines": log.count - sum(e.unexpected_count for e in expected),
            "duplicate_reference_lines": unique.unexpected_count,
            "problems": log.count,
            "results": [e.result(len(lines)) for e in expected],
        }
        atomic_write_text(result_path, json.dumps(document, indent=1) + "\n")
    if log.count:
        raise ManifestError(log.describe(str(manifest)))
    return len(lines)
