"""How the endpoint forms batches: the clients the last batch answered are waited for a share of
its predict time (kept-alive clients send again within a round trip), a lone client is not. A
stand-in model that takes PREDICT seconds a batch answers; the server is the real one (aiohttp's
test server on loopback), each client on its own kept-alive connection."""

from __future__ import annotations

import asyncio
import time
from http.client import HTTPConnection

import pytest
from aiohttp.test_utils import TestServer

from tasks.serving import server
from tasks.serving.responses import Responses

PREDICT = 0.6
"""The stand-in model's time for a batch."""


@pytest.fixture(autouse=True)
def return_share(monkeypatch):
    """Returning clients are waited for as long as a batch took (not a quarter of it): a wait
    tells itself from a loaded machine's scheduling delays by PREDICT, not PREDICT / 4."""
    monkeypatch.setattr(server, "RETURN_SHARE", 1.0)


async def _serve(*phases: list[int]) -> tuple[list[int], list[list[float]]]:
    """Batch sizes, and each phase's latencies: a phase is a number of requests per client, its
    clients sending at once, each request after its last answer; phases run one after another,
    a client's connection closed at its end."""
    sizes: list[int] = []

    def respond(model, images, accept):
        sizes.append(len(images))
        time.sleep(PREDICT)
        return [(b"[1.0]", "application/json") for _ in images]

    batcher = server.Batcher(None, Responses(["application/json"], respond), 32, 0)
    test_server = TestServer(server.make_app(batcher), host="127.0.0.1")
    await test_server.start_server()
    latencies: list[list[float]] = []
    address = test_server.make_url("").raw_host, test_server.port

    def client(requests: int) -> None:
        """One client in a thread of its own (as clients are other processes, not tasks of the
        server's event loop), on one kept-alive connection."""
        connection = HTTPConnection(*address, timeout=30)
        try:
            for _ in range(requests):
                started = time.monotonic()
                connection.request(
                    "POST", "/invocations", b"\x89PNG", {"Content-Type": "image/png"}
                )
                response = connection.getresponse()
                assert response.status == 200, response.read()
                response.read()
                latencies[-1].append(time.monotonic() - started)
        finally:
            connection.close()

    try:
        for phase in phases:
            latencies.append([])
            await asyncio.gather(*(asyncio.to_thread(client, requests) for requests in phase))
    finally:
        await test_server.close()
    return sizes, latencies


def test_the_clients_a_batch_answered_join_the_next_one():
    # Four clients answered together come back within a round trip of each other: without the
    # wait the first back would find the model idle and go alone, the others after it (4, 1, 3,
    # 1, 3); with it they stay together (4, 4, 4; or 1, 4, 4, 3 when the first request found
    # the model idle before the others came).
    sizes, _ = asyncio.run(_serve([3, 3, 3, 3]))
    assert sum(sizes) == 12 and sizes.count(4) >= 2, sizes


def test_a_lone_client_is_predicted_at_once():
    sizes, (latencies,) = asyncio.run(_serve([3]))
    assert sizes == [1, 1, 1]
    # A wait for returning clients would add PREDICT to each.
    assert max(latencies) < 1.5 * PREDICT, latencies


def test_a_client_that_closed_its_connection_is_not_waited_for():
    # The last batch answered a client that has left since: the next client's requests do not
    # wait for it.
    sizes, (_, latencies) = asyncio.run(_serve([1], [2]))
    assert sizes == [1, 1, 1]
    assert max(latencies) < 1.5 * PREDICT, latencies
