"""Airflow plugin of vision-pipelines: the operators' extra links and the run-report pages.

The pages are served by the API server under /vision-pipelines/ and, like its REST API, only
to a logged-in user (anonymous requests get 401; a browser is sent to the login page). Each run
is shown only to a user the auth manager allows to read that run's DAG's runs: the index lists
only those, a run page or file of another DAG is a 403. Nothing in the request (no `?dag_id=`)
chooses what is authorized. Its root middleware refuses a trigger whose Params contradict each
other (operators/trigger_checks.py).
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Callable, Iterable
from typing import Annotated
from urllib.parse import quote

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep
from airflow.configuration import conf
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from upath import UPath

from operators.connections import use_aws_connection
from operators.links import RunOutputsLink, RunReportLink
from operators.paths import data_root
from operators.trigger_checks import TriggerChecks
from tasks.errors import InputError
from tasks.lifecycle.champion import read_pointer
from tasks.run_report import (
    RunSummary,
    find_run,
    find_runs,
    folder_of_run,
    render_index,
    render_run,
    report_file,
    run_dag,
    runs_roots,
)
from tasks.uris import check_uri

CanRead = Callable[[str], bool]
"""Whether the logged-in user may read the runs of a DAG (by id)."""


def run_reader(user: GetUserDep) -> CanRead:
    """The logged-in user's permission to read each DAG's runs (401 when there is no user)."""
    from airflow.api_fastapi.app import get_auth_manager

    def can_read(dag_id: str) -> bool:
        return get_auth_manager().is_authorized_dag(
            method="GET",
            access_entity=DagAccessEntity.RUN,
            details=DagDetails(id=dag_id),
            user=user,
        )

    return can_read


Reader = Annotated[CanRead, Depends(run_reader)]
reports = FastAPI(title="vision-pipelines run reports", docs_url=None)


@reports.exception_handler(HTTPException)
async def login_first(request: Request, error: HTTPException) -> Response:
    """A person's browser that is not logged in goes to the login page and comes back here;
    other clients (and every other refusal) get the status with its detail, as the REST API."""
    wants_page = "text/html" in request.headers.get("accept", "")
    if error.status_code == 401 and wants_page:
        from airflow.api_fastapi.app import get_auth_manager

        login = get_auth_manager().get_url_login(next_url=str(request.url))
        return RedirectResponse(login, status_code=303)
    return JSONResponse({"detail": error.detail}, status_code=error.status_code)


def runs_root() -> list[UPath]:
    """The local runs folder and the deployment's object-storage run prefixes (read through
    the deployment's aws_conn_id, looked up only where there are such prefixes)."""
    roots = runs_roots(data_root() / "runs")
    if len(roots) > 1:
        use_aws_connection()
    return roots


def airflow_runs(runs: Iterable[RunSummary]) -> dict[tuple[str, str], tuple[str, float]]:
    """(state, start time as a timestamp, 0 before it starts) of the Airflow runs that wrote
    `runs`, by (dag id, run id): one query."""
    keys = {(r.dag_id, r.run_id) for r in runs if r.dag_id and r.run_id}
    if not keys:
        return {}
    # The metadata database is the API server's; plugins are also loaded where it is not.
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = select(DagRun.dag_id, DagRun.run_id, DagRun.state, DagRun.start_date).where(
        DagRun.run_id.in_({run_id for _, run_id in keys})
    )
    with create_session() as session:
        rows = session.execute(query).all()
    return {
        (d, r): (str(state), started.timestamp() if started else 0.0)
        for d, r, state, started in rows
        if (d, r) in keys
    }


def airflow_run_url(run: RunSummary) -> str | None:
    if not (run.dag_id and run.run_id):
        return None
    base = conf.get("api", "base_url", fallback="").rstrip("/")
    return f"{base}/dags/{quote(run.dag_id, safe='')}/runs/{quote(run.run_id, safe='')}"


def current_champions(runs: Iterable[RunSummary]) -> set[tuple[str, str]]:
    """(dag id, run id) of each pipeline's champion, from the champion pointers the runs'
    own parameters name (`models_uri`); a pointer that cannot be read marks none."""
    places = {
        (r.dag_id, r.record["params"]["models_uri"])
        for r in runs
        if r.dag_id and isinstance(((r.record or {}).get("params") or {}).get("models_uri"), str)
    }
    found = set()
    for dag_id, models_uri in places:
        try:
            # The run's form chose models_uri: read only where the deployment allows.
            champion = read_pointer(check_uri(models_uri, "models_uri"), dag_id)["champion"]
        except Exception:  # noqa: BLE001 - one unreadable pointer must not break the page
            logging.getLogger(__name__).warning("champion of %s unreadable", dag_id, exc_info=True)
            continue
        if champion:
            found.add((dag_id, champion["run_id"]))
    return found


@reports.get("/", response_class=HTMLResponse)
def index(can_read: Reader) -> str:
    runs = [r for r in find_runs(runs_root()) if can_read(r.owner)]
    known = airflow_runs(runs)
    # Newest Airflow run first (a folder's time changes as later steps write); folders no
    # Airflow run recorded after them, as found.
    runs.sort(key=lambda r: known.get((r.dag_id, r.run_id), ("", -1.0))[1], reverse=True)
    states = {key: state for key, (state, _) in known.items()}
    return render_index(runs, states, current_champions(runs))


@reports.get("/files/{relative:path}")
def file(relative: str, can_read: Reader) -> Response:
    pipeline, _, rest = relative.partition("/")
    roots = runs_root()
    dag_id = run_dag(roots, pipeline, rest.partition("/")[0])
    try:
        if dag_id is None:
            raise InputError("not a report file")
        path = report_file(roots, relative)
    except InputError as e:
        raise HTTPException(status_code=404, detail=str(e)) from e
    if not can_read(dag_id):
        raise HTTPException(status_code=403, detail="not allowed to read this run")
    # A page (Data Docs) shows data values: sandboxed, it runs no script and has no access to
    # this origin (the Airflow session).
    headers = {"Content-Security-Policy": "sandbox"} if path.name.endswith(".html") else None
    if path.protocol in ("", "file", "local"):
        return FileResponse(path.path, headers=headers)
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Response(content=path.read_bytes(), media_type=media_type, headers=headers)


@reports.get("/runs/{dag_id}/{run_id}/")
def run_of_airflow(dag_id: str, run_id: str, can_read: Reader) -> RedirectResponse:
    """The report of an Airflow run (the "Run report" tab of Airflow's run page): redirected to
    its run folder's page, whose links are relative to it."""
    if not can_read(dag_id):
        raise HTTPException(status_code=403, detail="not allowed to read this run")
    found = folder_of_run(runs_root(), dag_id, run_id)
    if found is None:
        raise HTTPException(status_code=404, detail="this run has written no report yet")
    pipeline, run = found
    return RedirectResponse(f"../../../{quote(pipeline)}/{quote(run, safe='=')}/")


@reports.get("/{pipeline}/{run}/", response_class=HTMLResponse)
def run_page(pipeline: str, run: str, can_read: Reader) -> str:
    summary = find_run(runs_root(), pipeline, run)
    if summary is None:
        raise HTTPException(status_code=404, detail="no such run")
    if not can_read(summary.owner):
        raise HTTPException(status_code=403, detail="not allowed to read this run")
    state, _ = airflow_runs([summary]).get((summary.dag_id, summary.run_id), (None, 0.0))
    return render_run(summary, state=state, airflow_url=airflow_run_url(summary))


class VisionPipelinesPlugin(AirflowPlugin):
    name = "vision_pipelines"
    operator_extra_links = [RunReportLink(), RunOutputsLink()]
    fastapi_apps = [
        {"app": reports, "url_prefix": "/vision-pipelines", "name": "vision-pipelines run reports"}
    ]
    fastapi_root_middlewares = [
        {"middleware": TriggerChecks, "name": "vision-pipelines checks across a run's Params"}
    ]
    external_views = [
        {
            "name": "Training runs",
            "href": "vision-pipelines/",
            "destination": "nav",
            "category": "browse",
            # Shown inside Airflow's UI (its navigation around it), not in a new tab.
            "url_route": "training-runs",
        },
        {
            # A tab of every run's page in Airflow: the run's report inside Airflow's frame.
            "name": "Run report",
            "href": "vision-pipelines/runs/{DAG_ID}/{RUN_ID}/",
            "destination": "dag_run",
            "url_route": "run-report",
        },
    ]
