"""An S3 emulator for the object-storage tests: moto's server on a free port, with boto's and
Airflow's aws_default settings pointing at it (the `s3` fixture, a plug-in of tests/conftest.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

BUCKET = "vision"
ROOT = Path(__file__).resolve().parents[1]


def _moto_server() -> Path:
    """moto's server: this environment's, else the Airflow environment's (the trainer's has
    none; the server is a process of its own either way)."""
    here = Path(sys.executable).parent / "moto_server"
    return here if here.exists() else ROOT / ".venv" / "bin" / "moto_server"


def _forget_file_systems() -> None:
    import fsspec
    from s3fs import S3FileSystem

    S3FileSystem.clear_instance_cache()
    # A step operator's connection (operators/connections.py) to an earlier emulator.
    fsspec.config.conf.pop("s3", None)
    if connections := sys.modules.get("operators.connections"):
        connections.forget_aws_connection()
    if store := sys.modules.get("airflow.sdk.io.store"):  # the Airflow environment only
        store._STORE_CACHE.clear()


def moto_server(host: str = "127.0.0.1", **env: str) -> tuple[subprocess.Popen, int]:
    """moto's S3 server on a free port of `host` (with `env` added to its environment, `{port}`
    in a value replaced by the port), once it accepts connections; the process and its port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [_moto_server(), "-H", host, "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **{k: v.format(port=port) for k, v in env.items()}},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server, port
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise AssertionError("the S3 emulator (moto_server) did not start")


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on a free port holding the bucket BUCKET, with boto's env and
    Airflow's aws_default pointing at it; yields its endpoint URL."""
    server, port = moto_server()
    endpoint = f"http://127.0.0.1:{port}"
    # fsspec caches file systems by their arguments, Airflow's ObjectStoragePath its stores by
    # connection: one made for an earlier module's emulator (another port) must not be reused.
    from s3fs import S3FileSystem

    _forget_file_systems()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
        }.items():
            mp.setenv(key, value)
        mp.setenv(
            "AIRFLOW_CONN_AWS_DEFAULT",
            json.dumps(
                {
                    "conn_type": "aws",
                    "login": "testing",
                    "password": "testing",
                    "extra": {"region_name": "us-east-1", "endpoint_url": endpoint},
                }
            ),
        )
        S3FileSystem().mkdir(BUCKET)
        yield endpoint
    server.terminate()
    server.wait(timeout=10)
    _forget_file_systems()


@pytest.fixture(scope="module")
def s3(s3_endpoint):
    """A boto3 client of the S3 emulator (the Airflow environment's boto3)."""
    import boto3

    return boto3.client("s3", endpoint_url=s3_endpoint)


def assert_none_staged(root: Path, samples: list[bytes]) -> None:
    """No file under `root` (a streamed step's ml-root) holds any of the dataset's bytes."""
    for path in (p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        assert not any(sample in data for sample in samples), path
