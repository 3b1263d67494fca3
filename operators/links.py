"""Operator extra links: from a task to its run's report page and to its outputs in storage."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow.configuration import conf
from airflow.sdk import BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom

from tasks.run_report import report_path, run_prefix

XCOM_KEY = "run_outputs_uri"
"""The task's output URI, pushed before the step starts (so the links work when it fails)."""


def browsable_url(uri: str) -> str:
    """s3://bucket/prefix opens in the S3 console; other storage has no browser page ("")."""
    if not uri.startswith("s3://"):
        return ""
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    return (
        f"https://s3.console.aws.amazon.com/s3/buckets/{quote(bucket)}"
        f"?prefix={quote(prefix.rstrip('/') + '/')}"
    )


def report_url(uri: str) -> str:
    """The report page (served by our plugin on the API server) of the run that `uri` is in;
    relative to the UI unless `[api] base_url` is set."""
    prefix = run_prefix(uri)
    if prefix is None:
        return ""
    base = conf.get("api", "base_url", fallback="").rstrip("/")
    return f"{base}/vision-pipelines/{report_path(prefix)}/"


def _output_uri(ti_key: Any) -> str:
    return XCom.get_value(key=XCOM_KEY, ti_key=ti_key) or ""


class RunOutputsLink(BaseOperatorLink):
    """ "Run outputs": the step's folder in the S3 console (runs in object storage)."""

    name = "Run outputs"

    @classmethod
    def persist(cls, context: Any, uri: str) -> None:
        context["ti"].xcom_push(key=XCOM_KEY, value=uri)

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return browsable_url(_output_uri(ti_key))


class RunReportLink(BaseOperatorLink):
    """ "Run report": the run's page of metrics, pictures, parameters and failures."""

    name = "Run report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return report_url(_output_uri(ti_key))
