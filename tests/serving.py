"""The real-time endpoint as a client sees it: `python -m tasks.serve` on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def served(model: Path, *args: str, log: list[str] | None = None, **env: str) -> Iterator[str]:
    """The endpoint's base URL while `tasks.serve` serves `model`; its log lines go into `log`."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "tasks.serve", "--model", str(model)]
    command += ["--host", "127.0.0.1", "--port", str(port), *args]
    server = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while get(f"{url}/ping") != 200:
            if server.poll() is not None:
                raise AssertionError(f"the server exited: {server.stdout.read()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError("the server did not answer /ping in 180 s")
            time.sleep(0.2)
        yield url
        assert server.poll() is None, "the server stopped while serving"
    finally:
        server.terminate()
        server.wait(timeout=30)
        if log is not None:
            log += server.stdout.read().splitlines()


def get(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except (urllib.error.URLError, ConnectionError):
        return None


def post(
    url: str, body: bytes, content_type: str, accept: str | None = None
) -> tuple[int, str, bytes]:
    """(status, Content-Type, body) of one POST /invocations."""
    headers = {"Content-Type": content_type, **({"Accept": accept} if accept else {})}
    request = urllib.request.Request(f"{url}/invocations", body, headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()
