"""The deployment's settings in one place (tasks/settings.py): Airflow's configuration as their
source on the Airflow side, handed to the steps explicitly; object storage and the cluster
through Airflow connections."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import textwrap

import fsspec
import pytest

from operators.connections import use_aws_connection
from tasks.settings import SETTINGS, markdown_table, setting_text, step_environment
from tests.conftest import ROOT
from tests.s3 import BUCKET

# Set by the Indexed Job for its own pods, never by a deployment.
PER_POD = {"VISION_PIPELINES_INSTANCE_COUNT", "VISION_PIPELINES_WORKER_SUBDOMAIN"}


def test_the_readme_table_is_the_settings_table():
    readme = (ROOT / "README.md").read_text()
    found = re.search(
        r"<!-- settings table: python -m tasks.settings -->\n(.*?)<!-- end of the settings table",
        readme,
        re.S,
    )
    assert found, "README.md lost its settings table"
    assert found.group(1) == markdown_table(), "run: python -m tasks.settings, into README.md"


def _whole_number_settings() -> dict[str, bool]:
    """Every setting the code reads with `setting(...)`, and whether the call gives a default of
    its own (the names of module constants resolved)."""
    import ast

    found: dict[str, bool] = {}
    for folder in ("operators", "tasks", "dags", "plugins"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            constants = {
                t.id: n.value.value
                for n in ast.walk(tree)
                if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
                for t in n.targets
                if isinstance(t, ast.Name)
            }
            for call in ast.walk(tree):
                if (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Name)
                    and call.func.id == "setting"
                ):
                    first = call.args[0]
                    name = first.value if isinstance(first, ast.Constant) else constants[first.id]
                    found[name] = len(call.args) > 1
    return found


def test_whole_number_settings_take_their_default_from_the_table(monkeypatch):
    """One place for a default: a `setting(NAME)` call reads the table's, which the README shows."""
    from tasks.settings import setting

    by_name = {s.name: s for s in SETTINGS}
    read = _whole_number_settings()
    assert "VISION_PIPELINES_MAX_IMAGE_SIDE" in read and "VISION_PIPELINES_RETRIES" in read
    for name, own_default in read.items():
        monkeypatch.delenv(name, raising=False)
        if own_default:  # a rule, not a number, in the table
            assert not by_name[name].default.isdigit(), name
        else:
            assert setting(name, minimum=0) == int(by_name[name].default), name


def test_every_setting_the_code_reads_is_in_the_table_and_none_that_it_does_not():
    code = subprocess.run(
        ["git", "grep", "-h", "-o", r"\bVISION_PIPELINES_[A-Z0-9][A-Z0-9_]*[A-Z0-9]", "--",
         "operators", "tasks", "dags", "plugins"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    read = set(code) - PER_POD - {"VISION_PIPELINES_K8S"}
    read = {n for n in read if not n.startswith("VISION_PIPELINES_IMAGE_CLASSIFICATION_")}
    listed = {s.name for s in SETTINGS if "<" not in s.name}
    assert read - listed == set(), "settings the table does not document"
    assert listed - read == set(), "settings no code reads"


def _python(code: str, env: dict[str, str], tmp_path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "AIRFLOW_HOME": str(tmp_path),
             **env},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_airflow_cfg_and_its_environment_variables_set_the_deployment(tmp_path):
    """`[vision_pipelines]` in airflow.cfg, `AIRFLOW__VISION_PIPELINES__<KEY>` over it (Airflow's
    own order), then the plain `VISION_PIPELINES_*` variable."""
    (tmp_path / "airflow.cfg").write_text(
        "[vision_pipelines]\nrunner = kubernetes\nk8s_namespace = from-cfg\nmax_epochs = 7\n"
    )
    probe = """
        import json
        import operators
        from operators.kubernetes_pods import KubernetesSettings
        from operators.pipeline import deployment_runner
        from tasks.settings import step_environment
        settings = KubernetesSettings.from_env()
        print(json.dumps({"runner": deployment_runner(), "namespace": settings.namespace,
                          "conn": settings.conn_id, "steps": step_environment()}))
    """
    found = _python(probe, {"VISION_PIPELINES_K8S_NAMESPACE": "from-env"}, tmp_path)
    assert found["runner"] == "kubernetes" and found["namespace"] == "from-cfg"
    assert found["conn"] == "kubernetes_default"
    assert found["steps"] == {"VISION_PIPELINES_MAX_EPOCHS": "7"}
    found = _python(
        probe,
        {
            "AIRFLOW__VISION_PIPELINES__K8S_NAMESPACE": "from-airflow-env",
            "AIRFLOW__VISION_PIPELINES__KUBERNETES_CONN_ID": "gpu_cluster",
        },
        tmp_path,
    )
    assert found["namespace"] == "from-airflow-env" and found["conn"] == "gpu_cluster"


def test_steps_get_the_settings_they_read_from_the_airflow_side(tmp_path, monkeypatch, capsys):
    """A setting only Airflow's configuration holds reaches the local runner's process and the
    pods' environment as its variable; the pod and the deploy step use kubernetes_conn_id."""
    from operators.kubernetes_pods import KubernetesSettings
    from operators.runners.kubernetes import KubernetesRunner
    from operators.runners.local import LocalStepOperator
    from tests.operators.test_container import STEP

    monkeypatch.delenv("VISION_PIPELINES_MAX_EPOCHS", raising=False)
    monkeypatch.setenv("AIRFLOW__VISION_PIPELINES__MAX_EPOCHS", "7")
    monkeypatch.setenv("AIRFLOW__VISION_PIPELINES__TFHUB_MIRROR", "s3://mirror/hub")
    assert setting_text("VISION_PIPELINES_MAX_EPOCHS") == "7"
    assert {"VISION_PIPELINES_MAX_EPOCHS": "7"}.items() <= step_environment().items()

    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nenv | grep ^VISION_PIPELINES_\n")
    fake.chmod(0o755)
    LocalStepOperator(task_id="t", arguments=["train"], python=str(fake)).run()
    printed = capsys.readouterr().out
    assert "VISION_PIPELINES_MAX_EPOCHS=7" in printed
    assert "VISION_PIPELINES_TFHUB_MIRROR=s3://mirror/hub" in printed

    from operators.runners.base import StepRequest
    from tasks.algorithms import TRAINER

    monkeypatch.setenv("VISION_PIPELINES_TRAINER_IMAGES", "registry.example/trainer:1")
    s3_step = dataclasses.replace(STEP, channels={"train": "s3://b/train"}, output_uri="s3://b/o")
    pod = KubernetesRunner(KubernetesSettings(conn_id="gpu_cluster")).build(
        StepRequest(task_id="train", step=s3_step, environment=TRAINER)
    )
    assert pod.kubernetes_conn_id == "gpu_cluster"
    env = pod.env_vars  # before rendering, as the runner gave it
    assert env["VISION_PIPELINES_MAX_EPOCHS"] == "7"
    assert env["VISION_PIPELINES_TFHUB_MIRROR"] == "s3://mirror/hub"


@pytest.fixture
def own_connection(s3_endpoint, monkeypatch):
    """The emulator reachable only through the connection `team_store`: no ambient credentials
    or endpoint, no aws_default."""
    from tests.s3 import _forget_file_systems

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL",
                 "AIRFLOW_CONN_AWS_DEFAULT"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    connection = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"region_name": "us-east-1", "endpoint_url": s3_endpoint},
    }
    monkeypatch.setenv("AIRFLOW_CONN_TEAM_STORE", json.dumps(connection))
    _forget_file_systems()
    yield s3_endpoint
    _forget_file_systems()


def test_object_storage_through_the_deployments_connection(
    own_connection, monkeypatch, capsys, tmp_path
):
    """Operators, the tasks layer (fsspec) and the local runner's steps reach S3 through the
    deployment's aws_conn_id; an operator's own aws_conn_id wins."""
    from airflow.sdk.exceptions import AirflowSkipException

    from operators.lifecycle import PromoteOperator
    from operators.runners.local import LocalStepOperator
    from operators.storage import read_text, write_text
    from tasks.lifecycle.champion import read_pointer

    monkeypatch.setenv("AIRFLOW__VISION_PIPELINES__AWS_CONN_ID", "team_store")
    use_aws_connection()
    uri = f"s3://{BUCKET}/settings-test/hello.txt"
    write_text(uri, "through the connection")
    assert read_text(uri) == "through the connection"
    with fsspec.open(uri, "rt") as f:  # the tasks layer's way
        assert f.read() == "through the connection"
    assert read_pointer(f"s3://{BUCKET}/settings-test/models", "p")["champion"] is None

    python = tmp_path / "python"  # the local runner's step process: what it is given
    python.write_text("#!/bin/sh\nenv | grep ^AWS_ | sort\n")
    python.chmod(0o755)
    LocalStepOperator(task_id="t", arguments=["train"], python=str(python)).run()
    printed = capsys.readouterr().out
    assert f"AWS_ENDPOINT_URL={own_connection}" in printed
    assert "AWS_ACCESS_KEY_ID=testing" in printed

    # An operator's own connection wins over the deployment's (here one to a closed port).
    closed = {"conn_type": "aws", "extra": {"endpoint_url": "http://127.0.0.1:9"}}
    monkeypatch.setenv("AIRFLOW_CONN_NOWHERE", json.dumps(closed))
    monkeypatch.setenv("AIRFLOW__VISION_PIPELINES__AWS_CONN_ID", "nowhere")
    gate = f"s3://{BUCKET}/settings-test/run/gate"
    write_text(f"{gate}/gate.json", json.dumps({"promote": False, "reasons": ["kept"]}))
    op = PromoteOperator(
        task_id="promote",
        gate_uri=gate,
        model_uri=f"s3://{BUCKET}/settings-test/run/train/model.tar.gz",
        models_uri=f"s3://{BUCKET}/settings-test/models",
        pipeline="p",
        aws_conn_id="team_store",
    )
    with pytest.raises(AirflowSkipException, match="kept"):
        op.execute({})  # it read gate.json through team_store
    use_aws_connection()
    with pytest.raises(Exception, match="127.0.0.1:9"):
        read_text(f"{gate}/gate.json")  # the deployment's connection does not reach it
