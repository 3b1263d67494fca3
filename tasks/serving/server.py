"""The real-time endpoint (tasks/serve.py is its command): the managed inference container's
routes on aiohttp, concurrent requests batched."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tasks.errors import InputError
from tasks.limits import MAX_IMAGE_BYTES
from tasks.serving.responses import REQUEST, Body, Responses, one_by_one

IMAGE_TYPES = ("image/jpeg", "image/png", "application/x-image")
log = logging.getLogger("vision_pipelines.serve")


@dataclass
class _Request:
    image: bytes
    accept: str
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

    async def answer(self, image: bytes, accept: str) -> Body:
        request = _Request(image, accept)
        await self._queue.put(request)
        return await request.answer

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.wait
            while len(batch) < self.max_batch:
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), deadline - loop.time()))
                except TimeoutError:
                    break
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


async def _body(request: web.Request) -> bytes:
    """The request's image, refused with a sentence once it is over the byte cap."""
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > MAX_IMAGE_BYTES:
            raise InputError(
                f"{REQUEST}: more than {MAX_IMAGE_BYTES} bytes; allowed: at most "
                f"{MAX_IMAGE_BYTES} bytes an image (VISION_PIPELINES_MAX_IMAGE_BYTES)"
            )
        chunks.append(chunk)
    if not size:
        raise InputError(f"{REQUEST}: empty; send one JPEG or PNG image")
    return b"".join(chunks)


def _refusal(status: int, sentence: str) -> web.Response:
    return web.Response(status=status, text=sentence + "\n")


def make_app(batcher: Batcher) -> web.Application:
    """The endpoint's routes over a running batcher."""
    offered = ", ".join(batcher.responses.accept)

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
        try:
            image = await _body(request)
        except InputError as e:
            return _refusal(400, str(e))
        answer = await batcher.answer(image, accept)
        if isinstance(answer, InputError):
            return _refusal(400, str(answer))
        if isinstance(answer, Exception):
            return _refusal(500, f"internal error: {type(answer).__name__}")
        body, content_type = answer
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application(client_max_size=MAX_IMAGE_BYTES + (1 << 20))
    app.router.add_get("/ping", ping)
    app.router.add_post("/invocations", invocations)

    async def start_batcher(app: web.Application):
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()

    app.cleanup_ctx.append(start_batcher)
    return app
