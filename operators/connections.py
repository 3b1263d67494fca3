"""Object storage through an Airflow connection, as the Amazon provider's operators take it
(`aws_conn_id`, default the deployment's `[vision_pipelines] aws_conn_id`, itself `aws_default`).
A step operator names the connection of its process once (`use_aws_connection`): Airflow's
ObjectStoragePath, the tasks layer's fsspec file systems and the local runner's step processes
then all reach S3 with it. A connection that is not defined leaves the ambient credentials (boto's
chain: environment, profile, instance role), as the provider's hooks do; pods keep their service
account's identity."""

from __future__ import annotations

from typing import Any

import fsspec

from tasks.settings import setting_text

DEFAULT_AWS_CONN_ID = "aws_default"
_current: dict[str, Any] = {"conn_id": None, "environment": {}}


def aws_conn_id() -> str:
    """The deployment's connection to object storage."""
    return setting_text("VISION_PIPELINES_AWS_CONN_ID") or DEFAULT_AWS_CONN_ID


def current_aws_conn_id() -> str:
    """The connection this process uses (the deployment's until a step names another)."""
    return _current["conn_id"] or aws_conn_id()


def _defined(conn_id: str) -> bool:
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return False
    return True


def use_aws_connection(conn_id: str | None = None) -> None:
    """This process reaches object storage through `conn_id` (None: the deployment's)."""
    conn_id = conn_id or aws_conn_id()
    forget_aws_connection()
    _current["conn_id"] = conn_id
    if not _defined(conn_id):
        return
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id=conn_id)
    found = hook.get_session().get_credentials()  # None: the connection holds none
    credentials = found.get_frozen_credentials() if found is not None else None
    endpoint = hook.conn_config.get_service_endpoint_url(service_name="s3")
    region = hook.conn_config.region_name
    client = {k: v for k, v in (("endpoint_url", endpoint), ("region_name", region)) if v}
    options: dict[str, Any] = {"client_kwargs": client}
    environment = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": region,
    }
    if credentials is not None:
        options |= {"key": credentials.access_key, "secret": credentials.secret_key}
        options |= {"token": credentials.token} if credentials.token else {}
        environment |= {
            "AWS_ACCESS_KEY_ID": credentials.access_key,
            "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
            "AWS_SESSION_TOKEN": credentials.token,
        }
    fsspec.config.conf["s3"] = options
    _current["environment"] = {k: v for k, v in environment.items() if v}


def forget_aws_connection() -> None:
    """Back to the deployment's connection, nothing of an earlier one kept."""
    _current.update(conn_id=None, environment={})
    fsspec.config.conf.pop("s3", None)


def aws_step_environment() -> dict[str, str]:
    """The environment that gives a step process started here this process' connection."""
    return dict(_current["environment"])
