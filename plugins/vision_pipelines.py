"""Airflow plugin of vision-pipelines: the operators' extra links and a run-report page."""

from __future__ import annotations

from pathlib import Path

from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

from operators.links import RunOutputsLink
from operators.paths import data_root
from tasks.errors import InputError
from tasks.run_report import find_runs, render_index, render_run, report_file

reports = FastAPI(title="vision-pipelines run reports")


def runs_root() -> Path:
    return data_root() / "runs"


@reports.get("/", response_class=HTMLResponse)
def index() -> str:
    return render_index(find_runs(runs_root()))


@reports.get("/files/{relative:path}")
def file(relative: str) -> FileResponse:
    try:
        return FileResponse(report_file(runs_root(), relative))
    except InputError as e:
        raise HTTPException(status_code=404, detail=str(e)) from e


@reports.get("/{pipeline}/{run}/", response_class=HTMLResponse)
def run_page(pipeline: str, run: str) -> str:
    for summary in find_runs(runs_root()):
        if (summary.pipeline, summary.run) == (pipeline, run):
            return render_run(summary)
    raise HTTPException(status_code=404, detail=f"no run {pipeline}/{run}")


class VisionPipelinesPlugin(AirflowPlugin):
    name = "vision_pipelines"
    operator_extra_links = [RunOutputsLink()]
    fastapi_apps = [
        {"app": reports, "url_prefix": "/vision-pipelines", "name": "vision-pipelines run reports"}
    ]
    external_views = [
        {
            "name": "Training runs",
            "href": "vision-pipelines/",
            "destination": "nav",
            "category": "browse",
        }
    ]
