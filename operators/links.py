"""Operator extra link: from a task to the run-scoped folder its outputs go to."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom


def browsable_url(uri: str) -> str:
    """s3://bucket/prefix opens in the S3 console; other URIs are returned as they are."""
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        bucket = bucket.rpartition("@")[2]  # drop an Airflow connection id (s3://conn@bucket)
        return (
            f"https://s3.console.aws.amazon.com/s3/buckets/{quote(bucket)}"
            f"?prefix={quote(prefix.rstrip('/') + '/')}"
        )
    return uri


class RunOutputsLink(BaseOperatorLink):
    """ "Run outputs": pushed before the step starts, so it also works when the step fails."""

    name = "Run outputs"
    xcom_key = "run_outputs_uri"

    @classmethod
    def persist(cls, context: Any, uri: str) -> None:
        context["ti"].xcom_push(key=cls.xcom_key, value=uri)

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        uri = XCom.get_value(key=self.xcom_key, ti_key=ti_key)
        return browsable_url(uri) if uri else ""
