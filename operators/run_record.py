"""What a run's report needs that only its tasks know: which Airflow run wrote the run folder
(`run.json`: DAG, run id, logical date, the form's values) and why a data-prep step failed
(its `summary.json`, as container steps write theirs)."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from airflow.sdk import BaseOperator, ObjectStoragePath
from airflow.sdk.exceptions import AirflowSkipException

from operators.links import RunOutputsLink, RunReportLink
from operators.refusals import RunRefused, refuse
from operators.storage import read_text, write_text
from tasks.contract import EXIT_BAD_INPUT, EXIT_INTERNAL_ERROR, SUMMARY, Outcome, step_summary
from tasks.errors import InputError
from tasks.run_report import RUN_RECORD, run_prefix
from tasks.uris import check_uri

F = TypeVar("F", bound=Callable)
log = logging.getLogger(__name__)


def record_run(context: Any, output_uri: str) -> None:
    """Before a step starts: its links, and `<run prefix>/run.json` (the same content from
    every task of the run, written atomically, so any of them may write it first). Outside a
    DAG run (an operator executed on its own) there is nothing to record."""
    if "ti" in context:
        RunOutputsLink.persist(context, output_uri)
    prefix = run_prefix(output_uri)
    if prefix is None or not context.get("run_id"):
        return
    dag, logical_date = context.get("dag"), context.get("logical_date")
    params = dict(context.get("params") or {})
    try:  # every location the form chose, before any is written down (the reports read them)
        for name, value in params.items():
            if name.endswith("_uri") and isinstance(value, str) and value.strip():
                check_uri(value, name)
    except InputError as e:
        raise refuse(str(e)) from e
    record = {
        "dag_id": dag.dag_id if dag else None,
        "run_id": context["run_id"],
        "logical_date": logical_date.isoformat() if logical_date else None,
        "params": params,
    }
    claim_run_folder(prefix, record)
    write_text(f"{prefix}/{RUN_RECORD}", json.dumps(record, indent=2, default=str) + "\n")


def claim_run_folder(prefix: str, record: Mapping[str, Any]) -> None:
    """A run folder belongs to the DAG whose run created it, for good: refuse a step of another
    DAG's run (its form pointing there) before it writes anything, so that no DAG's users can
    take over another DAG's run folder and its report. A later run of the same DAG with the
    same key is a rerun of that interval (idempotent reruns and backfills) and replaces it."""
    path = f"{prefix}/{RUN_RECORD}"
    try:
        owner = json.loads(read_text(path))
    except FileNotFoundError:
        return
    except (OSError, ValueError):
        owner = None  # unreadable: no DAG may claim it
    if isinstance(owner, dict) and owner.get("dag_id") == record["dag_id"]:
        return
    who = (
        f"DAG {owner.get('dag_id')!r} (run {owner.get('run_id')!r})"
        if isinstance(owner, dict)
        else "another DAG"
    )
    raise refuse(
        f"output folder {prefix} already belongs to {who}; a run writes only into its own "
        "DAG's run folders: choose another Output location"
    )
