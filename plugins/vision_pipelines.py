"""Airflow plugin of vision-pipelines: registers the operators' extra links with the UI."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from operators.links import RunOutputsLink


class VisionPipelinesPlugin(AirflowPlugin):
    name = "vision_pipelines"
    operator_extra_links = [RunOutputsLink()]
