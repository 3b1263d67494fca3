"""The endpoint's limits (hardening, third pass): idle sockets held its descriptors, 20 held
48 MiB bodies took it from 0.65 to 1.7 GB, and an 86 KB PNG of 9000x9900 pixels took it to 3 GB.
A stand-in model answers; the server is the real one (aiohttp's test server on loopback)."""

from __future__ import annotations

import asyncio
import io
import socket
import time

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from PIL import Image

from tasks.serving import server
from tasks.serving.responses import Responses


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (width, height)).save(out, "PNG", optimize=True)
    return out.getvalue()


def app() -> web.Application:
    seen = []

    def respond(model, images, accept):
        seen.append(len(images))
        return [(b"[1.0]", "application/json") for _ in images]

    return server.make_app(server.Batcher(None, Responses(["application/json"], respond), 4, 0))


async def serve_and(check, **settings):
    for name, value in settings.items():
        setattr(server, name, value)
    test_server = TestServer(app(), host="127.0.0.1")
    await test_server.start_server()
    try:
        async with ClientSession(str(test_server.make_url(""))) as client:
            return await check(client, test_server)
    finally:
        await test_server.close()


@pytest.fixture(autouse=True)
def settings(monkeypatch):
    for name in ("BYTES_IN_FLIGHT", "PIXELS_PER_REQUEST", "PIXELS_IN_FLIGHT", "BODY_SECONDS"):
        monkeypatch.setattr(server, name, getattr(server, name))


def test_an_image_of_too_many_pixels_is_refused_from_its_header():
    bomb = png(9000, 9900)
    assert len(bomb) < 200_000

    async def check(client, _):
        async with client.post(
            "/invocations", data=bomb, headers={"Content-Type": "image/png"}
        ) as r:
            return r.status, await r.text()

    status, text = asyncio.run(serve_and(check))
    assert status == 400 and "9000x9900 = 89100000 pixels" in text
    assert "VISION_PIPELINES_SERVE_MAX_PIXELS" in text


def test_bodies_in_flight_share_one_budget():
    async def check(client, _):
        async def slow_body():
            yield b"\x89PNG" + b"\0" * 60_000
            await asyncio.sleep(1.0)
            yield b"\0"

        held = asyncio.create_task(
            client.post("/invocations", data=slow_body(), headers={"Content-Type": "image/png"})
        )
        await asyncio.sleep(0.3)
        async with client.post(
            "/invocations", data=b"\x89PNG" + b"\0" * 60_000, headers={"Content-Type": "image/png"}
        ) as r:
            second = r.status, await r.text()
        (await held).release()
        return second

    status, text = asyncio.run(serve_and(check, BYTES_IN_FLIGHT=100_000))
    assert status == 503 and "(at most 100000, VISION_PIPELINES_SERVE_BYTES_IN_FLIGHT)" in text


def test_a_client_that_sends_its_body_too_slowly_gets_408():
    async def check(client, _):
        async def trickle():
            yield b"\x89PNG"
            await asyncio.sleep(3)
            yield b"\0"

        async with client.post(
            "/invocations", data=trickle(), headers={"Content-Type": "image/png"}
        ) as r:
            return r.status, await r.text()

    status, text = asyncio.run(serve_and(check, BODY_SECONDS=1))
    assert status == 408 and "not received within 1 s" in text


def test_an_idle_connection_is_closed_by_the_served_endpoint(tmp_path):
    """The endpoint `python -m tasks.serve` runs (run_endpoint) closes a connection that sends
    nothing (aiohttp's default kept it for an hour)."""
    import subprocess
    import sys

    from tests.serving import ROOT

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = (
        "from tasks.serving.server import run_endpoint;"
        "from tests.tasks.test_serving_limits import app;"
        f"run_endpoint(app(), '127.0.0.1', {port})"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**__import__("os").environ, "VISION_PIPELINES_SERVE_IDLE_SECONDS": "1",
             "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                idle = socket.create_connection(("127.0.0.1", port), timeout=10)
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.2)
        started = time.monotonic()
        assert idle.recv(1) == b""  # closed by the server, not by our timeout
        assert time.monotonic() - started < 8
        idle.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
