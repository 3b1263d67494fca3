"""What a run's report needs that only its tasks know: which Airflow run wrote the run folder
(`run.json`: DAG, run id, logical date, the form's values) and why a data-prep step failed
(its `summary.json`, as container steps write theirs)."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from operators.connections import use_aws_connection
from operators.links import RunOutputsLink, RunReportLink
from operators.refusals import RunRefused, refuse
from operators.storage import read_text, storage_path, write_text
from tasks.contract import EXIT_BAD_INPUT, EXIT_INTERNAL_ERROR, SUMMARY, Outcome, step_summary
from tasks.data.layouts import layout_refusal
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


def record_failure(output_uri: str, step: str, code: int, reason: str) -> None:
    """`<output_uri>/summary.json` for a failed step: the report shows its reason. Best effort:
    the step's own error, not this one, is what the task fails with."""
    summary = step_summary(step=step, algorithm=None, outcome=Outcome(code, reason=reason))
    try:
        write_text(f"{output_uri.rstrip('/')}/{SUMMARY}", json.dumps(summary, indent=2) + "\n")
    except Exception:  # noqa: BLE001 - reporting must not hide the failure it reports
        log.warning("could not write the failure summary under %s", output_uri, exc_info=True)


def pipeline_step(execute: F) -> F:
    """Decorate an operator's `execute` (an operator with `output_uri`): the run is recorded
    first; a user's bad input fails the task once with its message, without retries; any
    failure leaves its reason beside the step's outputs. A skip (the gate kept the champion)
    is no failure and leaves none."""

    @functools.wraps(execute)
    def wrapper(self: Any, context: Any) -> Any:
        use_aws_connection(self.aws_conn_id)
        self.check_uris({name: getattr(self, name) for name in self.uri_fields})
        record_run(context, self.output_uri)
        try:
            self.check_inputs()
            return execute(self, context)
        except AirflowSkipException:
            raise  # a decision (the champion stays), not a failure: nothing to report as one
        except InputError as e:
            record_failure(self.output_uri, self.task_id, EXIT_BAD_INPUT, str(e))
            raise refuse(str(e)) from e
        except RunRefused as e:
            record_failure(self.output_uri, self.task_id, EXIT_BAD_INPUT, str(e))
            raise
        except Exception as e:
            reason = f"internal error: {type(e).__name__}: {e}"
            record_failure(self.output_uri, self.task_id, EXIT_INTERNAL_ERROR, reason)
            raise

    return wrapper  # type: ignore[return-value]


class RunStepOperator(BaseOperator):
    """A step of a pipeline run (it has an `output_uri` under the run prefix): its task page
    links to the run's report and, in object storage, to its outputs."""

    operator_extra_links = (RunReportLink(), RunOutputsLink())
    uri_fields: tuple[str, ...] = ("output_uri",)
    """Attributes that hold storage URIs: checked against the deployment's allow-list."""
    inputs: Mapping[str, str] = {}
    """Attributes naming data the step reads -> what they may hold: a URI given there must
    exist, or the step fails with one sentence naming its form field (`field_titles`)."""

    def __init__(
        self,
        *,
        field_titles: Mapping[str, str] | None = None,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.field_titles = dict(field_titles or {})
        self.aws_conn_id = aws_conn_id
        """The connection to object storage (None: the deployment's aws_conn_id)."""

    def check_inputs(self) -> None:
        """InputError for the first input URI that does not exist or is not of its layout,
        named as the form names it."""
        for name, data in self.inputs.items():
            uri = str(getattr(self, name) or "").strip()
            if not uri:
                continue
            path = storage_path(uri)
            reason = "does not exist" if not path.exists() else layout_refusal(path, data.layout)
            if reason:
                title = self.field_titles.get(name, name)
                raise InputError(f"{title} {uri} {reason}; allowed: {data.may_hold}")

    def check_uris(self, uris: Mapping[str, str]) -> None:
        """Refuse, before anything is read or written, a URI the deployment does not allow."""
        try:
            for name, uri in uris.items():
                if uri and str(uri).strip():
                    check_uri(str(uri), name)
        except InputError as e:
            raise refuse(str(e)) from e
