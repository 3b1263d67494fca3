"""The Airflow layer. On this side the deployment's settings come from Airflow's configuration
first (`[vision_pipelines]`: airflow.cfg or `AIRFLOW__VISION_PIPELINES__<KEY>`), then from the
`VISION_PIPELINES_*` environment variables (tasks/settings.py)."""

from __future__ import annotations

from airflow.configuration import conf

from tasks.settings import PREFIX, add_source


def _airflow_configuration(name: str) -> str | None:
    key = name.removeprefix(PREFIX).lower()
    return conf.get("vision_pipelines", key, fallback=None)


add_source(_airflow_configuration)
