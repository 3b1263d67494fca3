"""The real-time endpoint (tasks/serve.py is its command): the managed inference container's
routes on aiohttp, concurrent requests batched."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tasks.errors import InputError
from tasks.limits import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, check_encoded_image
from tasks.serving.responses import REQUEST, Body, Responses, one_by_one
from tasks.settings import setting

IMAGE_TYPES = ("image/jpeg", "image/png", "application/x-image")
log = logging.getLogger("vision_pipelines.serve")

BYTES_IN_FLIGHT = setting("VISION_PIPELINES_SERVE_BYTES_IN_FLIGHT")
"""Request bodies the endpoint holds at once (all connections together)."""
PIXELS_SETTING = "VISION_PIPELINES_SERVE_MAX_PIXELS"
PIXELS_PER_REQUEST = min(MAX_IMAGE_PIXELS, setting(PIXELS_SETTING))
PIXELS_IN_FLIGHT = setting("VISION_PIPELINES_SERVE_PIXELS_IN_FLIGHT", 4 * PIXELS_PER_REQUEST)
"""Decoded pixels of the images being predicted at once."""
BODY_SECONDS = setting("VISION_PIPELINES_SERVE_BODY_SECONDS")
"""How long a client may take to send its image."""
IDLE_SECONDS = setting("VISION_PIPELINES_SERVE_IDLE_SECONDS")
"""How long a connection may stay open without a request (before the first one, too)."""
HEADER_BYTES = 8190
"""The longest request line and header field (aiohttp's own default, named here)."""
SUMMARY_SECONDS = 60.0
"""How often the log says what was served (a line a request would be the whole log)."""
TRIM_PIXELS = 4_000_000
"""After a batch with more decoded pixels, freed memory goes back to the system."""
RETURN_SHARE = 0.25
"""How long a batch waits for the clients the last batch answered, as a share of that batch's
predict time: kept-alive clients send again within a round trip, and one batch of all of them
costs less than two halves (ResNet-20 on 32x32: 8 images 4.9 ms, 4 images 4.0 ms)."""


class Budget:
    """What all requests in flight may hold together; the event loop is its only user."""

    def __init__(self, limit: int, what: str, setting_name: str):
        self.limit, self.used, self.what, self.setting_name = limit, 0, what, setting_name

    def take(self, amount: int) -> None:
        if self.used + amount > self.limit:
            raise Busy(
                f"the endpoint holds {self.used} {self.what} of other requests (at most "
                f"{self.limit}, {self.setting_name}); try again shortly"
            )
        self.used += amount

    def give(self, amount: int) -> None:
        self.used -= amount


class Busy(Exception):
    """A request refused with 503 until others are done."""


def _trim_memory() -> None:
    """Give freed heap back to the system (glibc keeps it after a large image otherwise)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@dataclass
class _Request:
    image: bytes
    accept: str
    pixels: int = 0
    client: asyncio.BaseTransport | None = None
    answer: asyncio.Future = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Batcher:
    """Collects concurrent requests into batches and predicts them one batch at a time, off the
    event loop (the model is not shared between threads)."""

    def __init__(self, model: Any, responses: Responses, max_batch: int, wait: float):
        self.model, self.responses = model, responses
        self.max_batch, self.wait = max_batch, wait
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="predict")
        self._answered: list[asyncio.BaseTransport] = []
        self._return_seconds = 0.0
        self._requests = self._batches = self._largest = 0
        self._since = time.monotonic()

    def _served(self, size: int) -> None:
        """Count a batch; a line in the log at most every SUMMARY_SECONDS, not one a request."""
        self._requests, self._batches = self._requests + size, self._batches + 1
        self._largest = max(self._largest, size)
        if time.monotonic() - self._since >= SUMMARY_SECONDS:
            self.summary()

    def summary(self) -> None:
        """The requests served since the last summary, in how many batches."""
        seconds = time.monotonic() - self._since
        if self._batches:
            log.info(
                "served %d requests in %d batches (largest %d) in %.1f s, %.1f requests/s",
                self._requests,
                self._batches,
                self._largest,
                seconds,
                self._requests / seconds if seconds > 0 else 0.0,
            )
        self._requests = self._batches = self._largest = 0
        self._since = time.monotonic()

    async def answer(
        self,
        image: bytes,
        accept: str,
        pixels: int = 0,
        client: asyncio.BaseTransport | None = None,
    ) -> Body:
        """The response to one image; `client`, the connection it came on, lets a batch wait
        for the clients the last one answered."""
        request = _Request(image, accept, pixels, client)
        await self._queue.put(request)
        return await request.answer

    async def run(self) -> None:
        try:
            await self._run()
        finally:  # stopped with the server: what it served since the last line
            self.summary()

    def _returning(self, batch: list[_Request]) -> bool:
        """Whether a client the last batch answered, still connected, has not sent again."""
        present = {r.client for r in batch}
        return any(c not in present and not c.is_closing() for c in self._answered)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            started = loop.time()
            deadline, returns_by = started + self.wait, started + self._return_seconds
            while len(batch) < self.max_batch:
                # What arrived while the last batch was predicted joins at once; then the batch
                # waits for company until its deadline (none with a wait of 0), and for the
                # clients the last batch answered a share of its time (a lone client: none).
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                until = max(deadline, returns_by) if self._returning(batch) else deadline
                if until <= loop.time():
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), until - loop.time()))
                except TimeoutError:
                    break
            predicting = loop.time()
            for accept in dict.fromkeys(r.accept for r in batch):
                same = [r for r in batch if r.accept == accept]
                try:
                    answers = await loop.run_in_executor(
                        self._pool,
                        one_by_one,
                        self.responses.respond,
                        self.model,
                        [r.image for r in same],
                        accept,
                    )
                except Exception as e:  # noqa: BLE001 - answered as a 500, the server goes on
                    log.exception("prediction failed")
                    answers = [e] * len(same)
                for request, answer in zip(same, answers, strict=True):
                    if not request.answer.done():
                        request.answer.set_result(answer)
            self._answered = [r.client for r in batch if r.client is not None]
            self._return_seconds = RETURN_SHARE * (loop.time() - predicting)
            self._served(len(batch))
            if sum(r.pixels for r in batch) > TRIM_PIXELS:
                await loop.run_in_executor(self._pool, _trim_memory)


async def _body(request: web.Request, budget: Budget, taken: list[int]) -> bytes:
    """The request's image, refused with a sentence once it is over the byte cap; its bytes are
    taken from `budget` as they arrive (`taken` says how many, to give back)."""
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > MAX_IMAGE_BYTES:
            raise InputError(
                f"{REQUEST}: more than {MAX_IMAGE_BYTES} bytes; allowed: at most "
                f"{MAX_IMAGE_BYTES} bytes an image (VISION_PIPELINES_MAX_IMAGE_BYTES)"
            )
        budget.take(len(chunk))
        taken[0] += len(chunk)
        chunks.append(chunk)
    if not size:
        raise InputError(f"{REQUEST}: empty; send one JPEG or PNG image")
    return b"".join(chunks)


def _refusal(status: int, sentence: str) -> web.Response:
    return web.Response(status=status, text=sentence + "\n")


def make_app(batcher: Batcher) -> web.Application:
    """The endpoint's routes over a running batcher."""
    offered = ", ".join(batcher.responses.accept)
    body_budget = Budget(BYTES_IN_FLIGHT, "bytes", "VISION_PIPELINES_SERVE_BYTES_IN_FLIGHT")
    pixel_budget = Budget(PIXELS_IN_FLIGHT, "pixels", "VISION_PIPELINES_SERVE_PIXELS_IN_FLIGHT")

    async def ping(_: web.Request) -> web.Response:
        return web.Response(text="")

    async def invocations(request: web.Request) -> web.Response:
        if request.content_type not in IMAGE_TYPES:
            return _refusal(
                415,
                f"Content-Type {request.content_type or '(none)'} is not accepted; send one "
                f"image as {', '.join(IMAGE_TYPES)}",
            )
        accept = batcher.responses.choose(request.headers.get("Accept"))
        if accept is None:
            return _refusal(
                406, f"Accept {request.headers.get('Accept')} cannot be served; allowed: {offered}"
            )
        taken, pixels = [0], 0
        try:
            async with asyncio.timeout(BODY_SECONDS):
                image = await _body(request, body_budget, taken)
            pixels = check_encoded_image(
                REQUEST, image, max_pixels=PIXELS_PER_REQUEST, setting_name=PIXELS_SETTING
            )
            pixel_budget.take(pixels)
        except InputError as e:
            return _refusal(400, str(e))
        except Busy as e:
            return _refusal(503, str(e))
        except TimeoutError:
            return _refusal(
                408,
                f"{REQUEST}: not received within {BODY_SECONDS} s "
                "(VISION_PIPELINES_SERVE_BODY_SECONDS)",
            )
        finally:
            body_budget.give(taken[0])
        try:
            answer = await batcher.answer(image, accept, pixels, request.transport)
        finally:
            pixel_budget.give(pixels)
        if isinstance(answer, InputError):
            return _refusal(400, str(answer))
        if isinstance(answer, Exception):
            return _refusal(500, f"internal error: {type(answer).__name__}")
        body, content_type = answer
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application(
        client_max_size=MAX_IMAGE_BYTES + (1 << 20),
        handler_args={"max_line_size": HEADER_BYTES, "max_field_size": HEADER_BYTES},
    )
    app.router.add_get("/ping", ping)
    app.router.add_post("/invocations", invocations)

    async def start_batcher(app: web.Application):
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()

    app.cleanup_ctx.append(start_batcher)
    return app


def run_endpoint(app: web.Application, host: str, port: int, *, reuse_port: bool = False) -> None:
    """Serve `app` until stopped, idle connections closed after IDLE_SECONDS."""
    web.run_app(
        app,
        host=host,
        port=port,
        reuse_port=reuse_port,
        print=None,
        access_log=None,
        keepalive_timeout=IDLE_SECONDS,
    )
