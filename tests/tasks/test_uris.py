"""Storage locations a run may use: one check on the Airflow side and in the step."""

from __future__ import annotations

import pytest

from tasks.errors import InputError
from tasks.uris import check_uri


def test_any_file_or_s3_uri_without_an_allow_list(monkeypatch):
    monkeypatch.delenv("VISION_PIPELINES_ALLOWED_URIS", raising=False)
    for uri in ("file:///data/x", "s3://bucket/prefix", "/plain/path"):
        assert check_uri(uri, "dataset_uri") == uri


def test_other_schemes_are_refused():
    with pytest.raises(InputError, match="dataset_uri 'http://evil/x': scheme http:// is not"):
        check_uri("http://evil/x", "dataset_uri")


def test_connection_ids_are_refused_on_both_sides():
    """Attack: `s3://<conn_id>@bucket` borrowed any Airflow connection's credentials (and the
    trainer read `<conn_id>@bucket` as the bucket name)."""
    with pytest.raises(InputError, match="connection ids in URIs"):
        check_uri("s3://aws_admin@other-bucket/data", "output_uri")


def test_the_deployments_prefixes_confine_uris(monkeypatch):
    """Attack: dataset_uri/output_uri took any file:// path the worker can read or write."""
    monkeypatch.setenv("VISION_PIPELINES_ALLOWED_URIS", "file:///srv/ml, s3://ml-data/runs")
    assert check_uri("file:///srv/ml/datasets/cats", "dataset_uri")
    assert check_uri("s3://ml-data/runs/run=1/train", "output_uri")
    for uri in (
        "file:///etc/passwd",
        "file:///srv/ml/../../etc/passwd",
        "file:///srv/ml-other/x",
        "s3://ml-data/other/x",
        "s3://ml-data-evil/runs/x",
        "/srv/ml/../root/.ssh",
    ):
        with pytest.raises(InputError, match="outside the locations this deployment allows"):
            check_uri(uri, "dataset_uri")


def test_relative_paths_are_refused(monkeypatch, tmp_path):
    """Attack: a relative path was checked against the allow-list from the Airflow worker's
    folder but read from the step's own (a pod's, another worker's), outside the check."""
    allowed = tmp_path / "srv" / "ml"
    (allowed / "datasets").mkdir(parents=True)
    monkeypatch.setenv("VISION_PIPELINES_ALLOWED_URIS", f"file://{allowed}")
    monkeypatch.chdir(allowed)
    for uri in ("datasets/cats", "file://datasets/cats", "./datasets", "file://"):
        with pytest.raises(InputError, match="is a relative path; write an absolute one"):
            check_uri(uri, "dataset_uri")
    assert check_uri(f"{allowed}/datasets/cats", "dataset_uri")


def test_a_link_inside_an_allowed_prefix_cannot_point_outside(monkeypatch, tmp_path):
    """Hardening item 7: the allow-list was lexical, so a symlink inside an allowed prefix that
    points outside passed and was staged. Now links are followed before the check."""
    allowed, secret = tmp_path / "srv" / "ml", tmp_path / "secret"
    allowed.mkdir(parents=True)
    secret.mkdir()
    (allowed / "datasets").symlink_to(secret, target_is_directory=True)
    (allowed / "real").mkdir()
    monkeypatch.setenv("VISION_PIPELINES_ALLOWED_URIS", f"file://{allowed}")
    for uri in (f"file://{allowed}/datasets", f"{allowed}/datasets/cats"):
        with pytest.raises(InputError, match="outside the locations this deployment allows"):
            check_uri(uri, "dataset_uri")
    assert check_uri(f"file://{allowed}/real", "dataset_uri")
    assert check_uri(f"file://{allowed}/not-yet-written", "output_uri")


@pytest.mark.parametrize(
    "uri", ["s3://ml-data/runs/../other/k", "s3://ml-data/runs/./x", "s3://ml-data/.."]
)
def test_dot_segments_in_object_keys_are_refused(monkeypatch, uri):
    """Hardening item 7: `s3://bucket/runs/../other/k` passed normalization (inside runs/) while
    s3fs sent the key literally."""
    monkeypatch.setenv("VISION_PIPELINES_ALLOWED_URIS", "s3://ml-data/")
    with pytest.raises(InputError, match="an object key with '.' or '..' segments"):
        check_uri(uri, "dataset_uri")
