"""An Airflow API server, scheduler, DAG processor and triggerer (`airflow standalone`) on
localhost with a fresh SQLite home, and headless Debian chromium driven by selenium."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tasks.data.synthetic import make_scenes_dataset, make_shapes_dataset
from tests.dag_runs import migrated_database

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = ROOT / ".venv" / "bin" / "airflow"
TRAINER_PYTHON = ROOT / ".venv-trainer" / "bin" / "python"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
USER, PASSWORD = "admin", "browser-test-password"
STARTUP_SECONDS = 240
SCHEDULED_RUN_SECONDS = 900
API_SECONDS, API_ATTEMPTS = 60, 3


@dataclass(frozen=True)
class Airflow:
    url: str
    home: Path
    data_root: Path
    log: Path

    def api(self, path: str, *, token: str | None = None, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"}
            | ({"Authorization": f"Bearer {token}"} if token else {}),
        )
        # One API server process also serves the running tasks' execution API; on a machine
        # busy with other tests it can take longer than a person would wait, so a request that
        # times out is asked again (GETs and the token are safe to repeat) before failing.
        attempts = API_ATTEMPTS
        while True:
            try:
                with urllib.request.urlopen(request, timeout=API_SECONDS) as response:
                    return json.loads(response.read())
            except (TimeoutError, urllib.error.URLError) as e:
                attempts -= 1
                timed_out = isinstance(getattr(e, "reason", e), TimeoutError)
                if not (timed_out and attempts):
                    raise

    def token(self) -> str:
        return self.api("/auth/token", body={"username": USER, "password": PASSWORD})[
            "access_token"
        ]

    def scheduled_run_state(self) -> str | None:
        """The state of image_classification's scheduled run (None: not made yet)."""
        runs = self.api(
            "/api/v2/dags/image_classification/dagRuns?run_type=scheduled", token=self.token()
        )["dag_runs"]
        if any(r["state"] == "failed" for r in runs):
            raise AssertionError(f"the scheduled run failed; see {self.log}")
        return runs[0]["state"] if runs else None

    def status(self, path: str) -> int:
        """The HTTP status of an anonymous GET."""
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as e:
            return e.code


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until(check, what: str, seconds: float, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise AssertionError(f"{what} within {seconds:.0f} s; end of {log}:\n{tail}")


# Module scope: the Airflow processes stop when the browser tests end, not when the test run
# does (the test runner goes on with other files in this process).
@pytest.fixture(scope="module")
def airflow(tmp_path_factory) -> Iterator[Airflow]:
    # Not a skip: `make test` installs them first, and a missing browser must not pass quietly.
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("chromium and chromedriver are not installed; `make browser` installs them")
    base = tmp_path_factory.mktemp("airflow")
    home, data_root = base / "home", base / "data"
    home.mkdir()
    # The embedded deployment's default dataset, as `make ui` makes it (small: a CPU test).
    make_shapes_dataset(data_root / "datasets" / "shapes", per_class=20, size=32)
    make_scenes_dataset(
        data_root / "datasets" / "scenes", train=16, validation=4, classes=3, size=(64, 48)
    )
    # ... and its pre-trained hub module, made here as `make ui` makes it (fewer epochs).
    hub = data_root / "hub"
    subprocess.run(
        [TRAINER_PYTHON, "-m", "tasks.hub", "pretrain", "--to", f"file://{hub}/mirror"]
        + ["--registry", str(hub / "registry.json"), "--epochs", "3", "--per-class", "30"],
        check=True,
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    (home / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
    shutil.copy(migrated_database(tmp_path_factory), home / "airflow.db")
    port = _free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # Unpaused at creation, image_classification's daily schedule makes its run of
        # yesterday at once (the fixture waits for it: the scheduled run of the gate's test);
        # the other pipelines run on demand here, so no scheduled run stands beside their tests.
        "VISION_PIPELINES_IMAGE_CLASSIFICATION_TF_SCHEDULE": "none",
        "VISION_PIPELINES_SEMANTIC_SEGMENTATION_SCHEDULE": "none",
        # As `make ui` runs it (Makefile EMBEDDED_DATABASE).
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "operators.embedded_database.CONNECT_ARGS",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC": (
            "operators.embedded_database.CONNECT_ARGS"
        ),
        # The DAG files do not change during the test: parsed once, not every 30 s (each parse
        # is a process that imports the operators; 5% of the suite's CPU while this test ran).
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "VISION_PIPELINES_DATA_ROOT": str(data_root),
        "VISION_PIPELINES_WORK_DIR": str(data_root / "work"),
        "VISION_PIPELINES_TFHUB_MIRROR": f"file://{hub}/mirror",
        "VISION_PIPELINES_TFHUB_REGISTRY": str(hub / "registry.json"),
        "TFHUB_CACHE_DIR": str(base / "no-hub-cache"),
        "PATH": f"{AIRFLOW.parent}:{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("VISION_PIPELINES_RUNNER", None)
    log = base / "airflow.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(AIRFLOW), "standalone"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Airflow(f"http://127.0.0.1:{port}", home, data_root, log)
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"airflow standalone exited; see {log}")
            try:
                token = server.token()
                return any(
                    d["dag_id"] == "image_classification"
                    for d in server.api("/api/v2/dags", token=token)["dags"]
                )
            except (OSError, KeyError, ValueError):
                return False

        _wait_until(
            ready, "the API server serves the image_classification DAG", STARTUP_SECONDS, log
        )
        _wait_until(
            lambda: server.scheduled_run_state() == "success",
            "the scheduler's daily run of image_classification succeeds",
            SCHEDULED_RUN_SECONDS,
            log,
        )
        yield server
    finally:
        _stop(process)


def _stop(standalone: subprocess.Popen) -> None:
    """Stop `airflow standalone` as Ctrl-C does (it stops each component, which stops its own
    workers), then end whatever is left of its process group. A SIGTERM to the whole group
    reached the scheduler's LocalExecutor workers as well, and the scheduler then waited on
    them for good, left running after the tests."""
    standalone.send_signal(signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        standalone.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(standalone.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def browser(airflow, tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()
