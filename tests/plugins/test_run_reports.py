from __future__ import annotations

import html
import io
import json
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from PIL import Image


@pytest.fixture
def client(tmp_path, monkeypatch):
    monkeypatch.setenv("VISION_PIPELINES_DATA_ROOT", str(tmp_path))
    run = tmp_path / "runs" / "image_classification" / "run=20260101T000000"
    (run / "train").mkdir(parents=True)
    (run / "evaluate").mkdir()
    (run / "train" / "metrics.json").write_text(
        json.dumps({"final": {"validation_accuracy": 0.975, "train_loss": 0.1}})
    )
    (run / "evaluate" / "evaluation.json").write_text(json.dumps({"accuracy": 0.96}))
    (run / "evaluate" / "summary.json").write_text(
        json.dumps({"status": "succeeded", "primary_metric": "accuracy", "value": 0.96})
    )
    Image.new("RGB", (4, 4)).save(run / "train" / "learning_curves.png")
    (tmp_path / "secret.json").write_text("{}")
    from plugins.vision_pipelines import reports, run_reader

    # A logged-in user allowed to read every DAG's runs (the anonymous case is tested below).
    reports.dependency_overrides[run_reader] = lambda: lambda dag_id: True
    yield TestClient(reports)
    reports.dependency_overrides.clear()


def test_anonymous_requests_are_refused(tmp_path, monkeypatch):
    """Attack: the pages and files (predictions, metrics) were served to anyone (HTTP 200)."""
    monkeypatch.setenv("VISION_PIPELINES_DATA_ROOT", str(tmp_path))
    run = tmp_path / "runs" / "image_classification" / "run=1" / "evaluate"
    run.mkdir(parents=True)
    (run / "evaluation.json").write_text('{"accuracy": 0.5}')
    from plugins.vision_pipelines import reports

    anonymous = TestClient(reports)
    for path in (
        "/",
        "/image_classification/run=1/",
        "/files/image_classification/run=1/evaluate/evaluation.json",
    ):
        response = anonymous.get(path)
        assert response.status_code in (401, 403), path
        assert "0.5" not in response.text
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    manager = init_auth_manager()
    forged = anonymous.get("/", headers={"Authorization": "Bearer not-a-token"})
    assert forged.status_code in (401, 403)
    token = manager.generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer"))
    allowed = anonymous.get("/", headers={"Authorization": f"Bearer {token}"})
    assert allowed.status_code == 200 and "run=1" in allowed.text


def test_index_lists_runs_with_their_validation_result(client):
    page = client.get("/").text
    assert "run=20260101T000000" in page and "accuracy 0.9600" in page


def test_run_page_shows_metrics_and_pictures(client):
    response = client.get("/image_classification/run=20260101T000000/")
    assert response.status_code == 200
    assert "validation_accuracy" in response.text and "0.9750" in response.text
    src = "../../files/image_classification/run=20260101T000000/train/learning_curves.png"
    assert f"<img src='{src}'" in response.text
    # Issue 43: the heading says what the picture is, not where its file lies.
    assert "<h3>Learning curves (training)</h3>" in response.text
    assert "<h3>image_classification/" not in response.text
    picture = client.get(
        "/files/image_classification/run=20260101T000000/train/learning_curves.png"
    )
    assert picture.status_code == 200 and picture.content[:4] == b"\x89PNG"


def test_files_outside_the_runs_are_refused(client):
    assert client.get("/files/../secret.json").status_code == 404
    assert client.get("/files/image_classification/nope.png").status_code == 404
    assert client.get("/image_classification/run=missing/").status_code == 404


def test_the_plugin_registers_the_app_and_a_nav_entry():
    from plugins.vision_pipelines import VisionPipelinesPlugin

    assert VisionPipelinesPlugin.fastapi_apps[0]["url_prefix"] == "/vision-pipelines"
    assert not VisionPipelinesPlugin.external_views[0]["href"].startswith("/")


def test_report_file_confines_paths(tmp_path):
    from tasks.errors import InputError
    from tasks.run_report import report_file

    (tmp_path / "runs").mkdir()
    (tmp_path / "outside.json").write_text("{}")
    (tmp_path / "runs" / "notes.txt").write_text("x")
    for relative in ("../outside.json", "notes.txt", "/etc/passwd"):
        with pytest.raises(InputError, match="not a report file"):
            report_file(tmp_path / "runs", relative)


def test_a_folder_name_cannot_become_a_script_link(client, tmp_path):
    """Attack: an output_uri whose folder is named `javascript:...` made the index link
    `href='javascript:alert(1)/run=.../'` (HTML-escaped, but not URL-encoded)."""
    import re

    evil = tmp_path / "runs" / "javascript:alert(1)" / "run=x"
    evil.mkdir(parents=True)
    page = client.get("/").text
    hrefs = re.findall(r"href='([^']*)'", page)
    assert hrefs and not any(h.lower().startswith("javascript:") for h in hrefs)
    evil_href = next(h for h in hrefs if "alert" in h)
    assert evil_href == "javascript%3Aalert%281%29/run=x/"
    assert client.get("/" + evil_href).status_code == 200


def test_one_malformed_run_does_not_break_the_index(client, tmp_path):
    huge = (
        '{"accuracy": ' + "9" * 400 + ', "primary_metric": "accuracy", "value": ' + "9" * 400 + "}"
    )
    for name, text in (
        ("list", "[1, 2]"),
        ("text", '{"accuracy": "high"}'),
        ("bad", "{"),
        ("huge", huge),  # hardening item 8: a 400-digit integer made the index a 500
    ):
        run = tmp_path / "runs" / "image_classification" / f"run={name}"
        (run / "evaluate").mkdir(parents=True)
        (run / "evaluate" / "evaluation.json").write_text(text)
        (run / "evaluate" / "summary.json").write_text(text)
        (run / "train").mkdir()
        (run / "train" / "metrics.json").write_text('{"final": [1]}')
        assert client.get(f"/image_classification/run={name}/").status_code == 200
    response = client.get("/")
    assert response.status_code == 200
    assert "run=20260101T000000" in response.text and "accuracy 0.9600" in response.text


def test_the_headline_is_the_algorithms_primary_metric_from_its_summary(client, tmp_path):
    """Reports take the headline from evaluate/summary.json, whatever the algorithm: no list of
    metric names in the report code."""
    run = tmp_path / "runs" / "detector" / "run=1"
    (run / "evaluate").mkdir(parents=True)
    (run / "evaluate" / "evaluation.json").write_text('{"mAP": 0.5, "accuracy": 0.1}')
    (run / "evaluate" / "summary.json").write_text(
        '{"status": "succeeded", "primary_metric": "box_f1", "value": 0.625}'
    )
    assert "box_f1 0.6250" in client.get("/detector/run=1/").text
    assert "box_f1 0.6250" in client.get("/").text


def _record(run, **values):
    record = {"dag_id": "image_classification", "run_id": "manual__2026-11-23T10:00:00+00:00"}
    (run / "run.json").write_text(json.dumps({**record, **values}))


def test_run_page_shows_the_airflow_run_its_parameters_and_a_link_back(client, tmp_path):
    run = tmp_path / "runs" / "image_classification" / "run=20260101T000000"
    _record(run, params={"epochs": 3, "image_shape": "3,32,32"})
    page = client.get("/image_classification/run=20260101T000000/").text
    assert "manual__2026-11-23T10:00:00+00:00" in page
    assert "image_shape" in page and "&quot;3,32,32&quot;" in page
    assert (
        "href='/dags/image_classification/runs/manual__2026-11-23T10%3A00%3A00%2B00%3A00'" in page
    )


def test_a_run_that_failed_before_training_is_listed_with_its_reason(client, tmp_path):
    run = tmp_path / "runs" / "image_classification" / "run=early"
    (run / "lists").mkdir(parents=True)
    _record(run)
    (run / "lists" / "summary.json").write_text(
        json.dumps({"step": "make_lst", "status": "failed", "reason": "cats/x.jpg: not an image"})
    )
    index = client.get("/").text
    assert "run=early" in index and "failed in make_lst: cats/x.jpg: not an image" in index
    page = client.get("/image_classification/run=early/").text
    assert "cats/x.jpg: not an image" in page and "Failures" in page


def test_error_pages_do_not_repeat_the_request(client):
    for path in ("/files/%3Cscript%3Ealert(1)%3C%2Fscript%3E.png", "/x/run=%3Cb%3E/"):
        response = client.get(path)
        assert response.status_code == 404
        assert "script" not in response.text and "<b>" not in response.text


def test_run_names_cannot_leave_the_runs_root(tmp_path):
    from tasks.run_report import find_run, runs_roots

    (tmp_path / "runs" / "p" / "run=1").mkdir(parents=True)
    (tmp_path / "run=x").mkdir()
    roots = runs_roots(tmp_path / "runs")
    assert find_run(roots, "p", "run=1") is not None
    assert find_run(roots, "..", "run=x") is None
    assert find_run(roots, "p", "1") is None


def test_gate_decisions_and_the_current_champion_are_shown(client, tmp_path):
    from tasks.lifecycle.gate import GateRules, decide

    runs = tmp_path / "runs" / "image_classification"
    models = f"file://{tmp_path}/models"
    decision = decide(
        {"accuracy": 0.7, "per_class": {"cat": {"recall": 0.6}, "dog": {"recall": 0.8}}},
        {"accuracy": 0.9, "per_class": {"cat": {"recall": 0.95}, "dog": {"recall": 0.85}}},
        metric="accuracy",
        higher_is_better=True,
        per_class_metric="recall",
        rules=GateRules(max_class_drop=0.1),
    )
    for key, run_id, gate in (
        ("20260101T000000", "scheduled__1", None),
        (
            "20260102T000000",
            "scheduled__2",
            decision.to_dict() | {"champion_run_id": "scheduled__1"},
        ),
    ):
        folder = runs / f"run={key}"
        (folder / "gate").mkdir(parents=True, exist_ok=True)
        record = {
            "dag_id": "image_classification",
            "run_id": run_id,
            "params": {"models_uri": models},
        }
        (folder / "run.json").write_text(json.dumps(record))
        if gate:
            (folder / "gate" / "gate.json").write_text(json.dumps(gate))
    pointer = tmp_path / "models" / "image_classification" / "champion.json"
    pointer.parent.mkdir(parents=True)
    entry = {"run_id": "scheduled__1", "model_uri": "file:///m.tar.gz"}
    pointer.write_text(json.dumps({"champion": entry, "history": [entry]}))

    index = client.get("/").text
    champion_row = index.split("scheduled__1")[0].rsplit("<tr", 1)[1]
    assert "class='champion'" in champion_row
    assert "champion kept" in index.split("scheduled__2")[1].split("</tr>")[0]
    page = client.get("/image_classification/run=20260102T000000/").text
    assert "Gate: champion kept" in page and "champion: scheduled__1" in page
    for reason in decision.reasons:
        assert html.escape(reason) in page
    assert "<td>cat (recall)</td><td>0.9500</td><td>0.6000</td>" in page
    assert "<td><b>accuracy</b></td><td>0.9000</td><td>0.7000</td>" in page


def test_file_serving_refuses_encoded_traversal_and_symlinks_out(client, tmp_path):
    run = tmp_path / "runs" / "image_classification" / "run=20260101T000000" / "evaluate"
    (run / "leak.json").symlink_to(tmp_path / "secret.json")
    for path in (
        "/files/..%2F..%2Fsecret.json",
        "/files/%2e%2e/%2e%2e/secret.json",
        "/files/image_classification%2F..%2F..%2F..%2Fsecret.json",
        "/files/image_classification/run=20260101T000000/evaluate/leak.json",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
    ok = client.get("/files/image_classification/run=20260101T000000/evaluate/evaluation.json")
    assert ok.status_code == 200 and ok.json() == {"accuracy": 0.96}


@pytest.mark.integration
def test_runs_written_to_s3_are_listed_open_and_serve_their_pictures(s3, client, monkeypatch):
    """Audit: reports listed only runs under the local data root; a run written to s3:// had no
    report and its "Run report" link was a 404. Now the deployment's object-storage prefixes are
    read through the storage layer."""
    from operators.links import report_url
    from tests.s3 import BUCKET

    prefix = "runs/semantic_segmentation/run=20260202T000000"
    png = io.BytesIO()
    Image.new("RGB", (3, 3), "red").save(png, format="PNG")
    for key, body in (
        ("run.json", json.dumps({"dag_id": "semantic_segmentation", "run_id": "s3run"})),
        ("evaluate/evaluation.json", json.dumps({"mIoU": 0.5})),
        ("evaluate/summary.json", json.dumps({"primary_metric": "mIoU", "value": 0.5})),
        ("evaluate/confusion_matrix.png", png.getvalue()),
    ):
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{key}", Body=body)
    link = report_url(f"s3://{BUCKET}/{prefix}/evaluate").removeprefix("/vision-pipelines")
    assert client.get(link).status_code == 404  # not a prefix the deployment listed
    monkeypatch.setenv("VISION_PIPELINES_REPORT_URIS", f"s3://{BUCKET}/runs")
    index = client.get("/").text
    assert "run=20260202T000000" in index and "mIoU 0.5000" in index
    assert "run=20260101T000000" in index  # the local runs are still there
    page = client.get(link)
    assert page.status_code == 200 and "mIoU 0.5000" in page.text
    picture = "semantic_segmentation/run=20260202T000000/evaluate/confusion_matrix.png"
    assert picture in page.text
    served = client.get(f"/files/{picture}")
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert served.content == png.getvalue()
    assert client.get("/files/semantic_segmentation/../../x.json").status_code == 404


def test_each_run_is_shown_only_to_readers_of_its_dag(tmp_path, monkeypatch):
    """Hardening item 8: authorization followed a `?dag_id=` in the query string, so with a
    per-DAG auth manager `/vision-pipelines/?dag_id=<a DAG I may read>` showed every DAG's runs.
    Now each run is authorized by its own DAG, whatever the request says."""
    import airflow.api_fastapi.app as app
    import airflow.api_fastapi.core_api.security as security
    from airflow.api_fastapi.core_api.security import get_user

    from plugins.vision_pipelines import reports

    class OnlyDagA:
        def is_authorized_dag(self, *, method, access_entity=None, details=None, user=None):
            return details is not None and details.id == "a"

    monkeypatch.setattr(app, "get_auth_manager", lambda: OnlyDagA())
    monkeypatch.setattr(security, "get_auth_manager", lambda: OnlyDagA(), raising=False)
    monkeypatch.setenv("VISION_PIPELINES_DATA_ROOT", str(tmp_path))
    for dag in ("a", "b"):
        run = tmp_path / "runs" / dag / "run=1"
        (run / "evaluate").mkdir(parents=True)
        (run / "run.json").write_text(json.dumps({"dag_id": dag, "run_id": f"secret-of-{dag}"}))
        (run / "evaluate" / "evaluation.json").write_text('{"accuracy": 0.5}')
    reports.dependency_overrides[get_user] = lambda: object()
    try:
        client = TestClient(reports)
        for query in ("", "?dag_id=a"):
            index = client.get(f"/{query}")
            assert index.status_code == 200
            assert "secret-of-a" in index.text and "secret-of-b" not in index.text
        assert client.get("/a/run=1/?dag_id=a").status_code == 200
        assert client.get("/b/run=1/?dag_id=a").status_code == 403
        assert client.get("/files/b/run=1/evaluate/evaluation.json?dag_id=a").status_code == 403
        assert client.get("/files/a/run=1/evaluate/evaluation.json").status_code == 200
        # the Run report tab of Airflow's run page: by DAG and run id, authorized by the DAG
        assert client.get("/runs/b/secret-of-b/", follow_redirects=False).status_code == 403
        assert client.get("/runs/a/secret-of-a/", follow_redirects=False).status_code == 307
    finally:
        reports.dependency_overrides.clear()


def test_data_quality_outcomes_and_their_data_docs_are_shown_sandboxed(client, tmp_path):
    """The Data Docs page holds values from the user's data (file names): it is served with
    a sandbox policy, so a script in it cannot run with the Airflow session's origin."""
    quality = tmp_path / "runs" / "image_classification" / "run=20260101T000000" / "quality"
    (quality / "data_docs").mkdir(parents=True)
    (quality / "data_docs" / "index.html").write_text("<script>alert(document.cookie)</script>")
    (quality / "quality.json").write_text(
        json.dumps(
            {
                "success": False,
                "results": [
                    {
                        "expectation": "expect_column_kl_divergence_to_be_less_than",
                        "column": "label",
                        "severity": "warning",
                        "success": False,
                        "observed": "0.51",
                    }
                ],
                "warnings": ["expectation ... on column label (warning) failed: observed 0.51"],
                "skipped": [],
                "distributions": {
                    "label": {"run": {"0": 0.5, "1": 0.5}, "champion": {"0": 0.9, "1": 0.1}}
                },
                "data_docs": "data_docs/index.html",
            }
        )
    )
    page = client.get("/image_classification/run=20260101T000000/").text
    assert "Data quality: expectations failed" in page
    assert "expect_column_kl_divergence_to_be_less_than" in page and "FAILED" in page
    assert "<td>0</td><td>0.900</td><td>0.500</td>" in page  # champion's vs this run's share
    link = html.unescape(page.split("class='data-docs' href='")[1].split("'")[0])
    docs = client.get("/image_classification/run=20260101T000000/" + link)
    assert docs.status_code == 200 and "<script>" in docs.text
    assert docs.headers["content-security-policy"] == "sandbox"
    picture = client.get(
        "/files/image_classification/run=20260101T000000/train/learning_curves.png"
    )
    assert "content-security-policy" not in picture.headers


def test_an_anonymous_browser_is_sent_to_the_login_page_and_back(tmp_path, monkeypatch):
    """A person opening a report link without a session saw raw `{"detail":"Not
    authenticated"}`; now the login page, with the report as where to come back."""
    from urllib.parse import parse_qs, urlsplit

    monkeypatch.setenv("VISION_PIPELINES_DATA_ROOT", str(tmp_path))
    from airflow.api_fastapi.app import init_auth_manager

    from plugins.vision_pipelines import reports

    init_auth_manager()
    anonymous = TestClient(reports)
    page = "/image_classification/run=1/"
    response = anonymous.get(page, headers={"Accept": "text/html"}, follow_redirects=False)
    assert response.status_code == 303
    login = urlsplit(response.headers["location"])
    assert login.path.endswith("/login")
    assert parse_qs(login.query)["next"] == [f"http://testserver{page}"]
    # A client that is not a browser keeps the REST API's answer.
    assert anonymous.get(page).status_code == 401


def test_the_index_lists_the_newest_airflow_run_first(client, tmp_path, monkeypatch):
    """Rows were in folder-time order, which a later step's write changes: now by when the
    Airflow run started, newest first; folders no Airflow run recorded come last."""
    import plugins.vision_pipelines as plugin

    runs = tmp_path / "runs" / "image_classification"
    for name in ("run=a", "run=b", "run=c"):
        (runs / name).mkdir()
        (runs / name / "run.json").write_text(
            json.dumps({"dag_id": "image_classification", "run_id": name[4:], "params": {}})
        )
    started = {"a": 300.0, "b": 100.0, "c": 200.0}
    monkeypatch.setattr(
        plugin,
        "airflow_runs",
        lambda summaries: {
            (r.dag_id, r.run_id): ("success", started[r.run_id])
            for r in summaries
            if r.run_id in started
        },
    )
    page = client.get("/").text
    order = [page.index(f">run={name}<") for name in ("a", "c", "b")]
    assert order == sorted(order)
    assert page.index(">run=c<") < page.index(">run=20260101T000000<")  # not known to Airflow


def test_run_page_shows_the_first_predictions_and_links_the_file(client, tmp_path):
    """Issue 43: the report had no predictions section: batch transform's first lines, each
    image's source-ref with its prediction, and the whole file one click away."""
    run = tmp_path / "runs" / "image_classification" / "run=20260101T000000"
    (run / "batch_transform").mkdir()
    rows = [{"source-ref": f"circle/{i:03d}.jpg", "prediction": [0.9, 0.1]} for i in range(12)]
    (run / "batch_transform" / "predictions.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows)
    )
    page = client.get("/image_classification/run=20260101T000000/").text
    assert "<h2>Predictions (batch transform)</h2>" in page
    assert "circle/009.jpg" in page and "circle/010.jpg" not in page
    assert html.escape('"prediction": [0.9, 0.1]') in page
    link = "../../files/image_classification/run=20260101T000000/batch_transform/predictions.jsonl"
    assert f"href='{link}'" in page
    served = client.get(link.removeprefix("../.."))
    assert served.status_code == 200 and served.text.count("\n") == 12
    empty = client.get("/image_classification/run=20260101T000000/").text
    (run / "batch_transform" / "predictions.jsonl").unlink()
    assert (
        "Predictions" in empty
        and "Predictions" not in client.get("/image_classification/run=20260101T000000/").text
    )


@pytest.mark.parametrize(
    ("path", "title"),
    [
        ("p/run=1/train/learning_curves.png", "Learning curves (training)"),
        ("p/run=1/evaluate/evaluation_confusion_matrix.png", "Confusion matrix (evaluation)"),
        ("p/run=1/evaluate/champion_vs_challenger.png",
         "Champion and challenger, per class (evaluation)"),
        ("p/run=1/quality/label_share.png", "Label share (data quality)"),
    ],
)  # fmt: skip
def test_pictures_are_titled_in_words(path, title):
    from tasks.run_report import picture_title

    assert picture_title(path) == title


def test_an_airflow_runs_report_tab_leads_to_its_run_folders_page(client, tmp_path):
    """Issue 43: the report opened outside Airflow's frame. A tab of each run's page in Airflow
    (an external view with destination dag_run) asks for the run by its ids."""
    from plugins.vision_pipelines import VisionPipelinesPlugin

    [tab] = [v for v in VisionPipelinesPlugin.external_views if v["destination"] == "dag_run"]
    assert tab["href"] == "vision-pipelines/runs/{DAG_ID}/{RUN_ID}/"
    run = tmp_path / "runs" / "image_classification" / "run=20260101T000000"
    _record(run)
    run_id = quote("manual__2026-11-23T10:00:00+00:00", safe="")
    answer = client.get(f"/runs/image_classification/{run_id}/", follow_redirects=False)
    assert answer.status_code == 307
    assert answer.headers["location"] == "../../../image_classification/run=20260101T000000/"
    page = client.get(f"/runs/image_classification/{run_id}/")
    assert page.status_code == 200 and "manual__2026-11-23T10:00:00+00:00" in page.text
    assert client.get("/runs/image_classification/manual__other/").status_code == 404
