"""`python -m tasks.serve --model MODEL.tar.gz|URI [--port 8080] [--workers N]`: a real-time
endpoint with the managed inference container's contract.

`GET /ping` answers 200 once the model is loaded. `POST /invocations` takes one image
(`Content-Type` image/jpeg, image/png or application/x-image) and answers in the type `Accept`
asks for, among those the model's algorithm offers (tasks/serving/responses.py): 415 or 406
with a sentence for other types, 400 with a sentence for an image that is corrupt or over the
caps of tasks.limits, and the server keeps serving. Requests that arrive together are predicted
in one batch (up to --max-batch, waiting at most --batch-wait-ms for company), through the
same code as batch transform.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import subprocess
import sys
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from fsspec.implementations.local import LocalFileSystem

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


def fetch_model(uri: str, folder: Path) -> Path:
    """A local model.tar.gz: the path itself, a copy of an object-storage URI, the one in a
    folder, or a folder holding an extracted archive (as the managed hosting mounts
    /opt/ml/model) packed again, so that its checksums and signature are checked as ever."""
    from tasks.artifact import MANIFEST
    from tasks.staging import check_exists

    fs, path = check_exists(uri)
    if not isinstance(fs, LocalFileSystem):
        local = folder / "model.tar.gz"
        fs.get_file(path, str(local))
        return local
    local = Path(path)
    if not local.is_dir():
        return local
    if (local / "model.tar.gz").is_file():
        return local / "model.tar.gz"
    if not (local / MANIFEST).is_file():
        raise InputError(f"{uri}: a folder without model.tar.gz or an extracted model ({MANIFEST})")
    packed = folder / "model.tar.gz"
    with tarfile.open(packed, "w:gz") as tar:
        for member in sorted(local.iterdir()):
            tar.add(member, arcname=member.name)
    return packed


def serve(args: argparse.Namespace) -> None:
    """Load the model, then answer requests until stopped."""
    from tasks.inference import LoadedModel

    with (
        tempfile.TemporaryDirectory(prefix="serve-") as tmp,
        LoadedModel(fetch_model(args.model, Path(tmp))) as model,
    ):
        if "responses" not in model.spec.entry_points:
            raise InputError(f"{args.model}: {model.spec.id} models have no real-time endpoint")
        responses: Responses = model.spec.entry_point("responses")
        batcher = Batcher(model, responses, args.max_batch, args.batch_wait_ms / 1000)
        log.info(
            "serving %s model %s on %s:%d (%s)",
            model.spec.id,
            args.model,
            args.host,
            args.port,
            ", ".join(responses.accept),
        )
        web.run_app(
            make_app(batcher),
            host=args.host,
            port=args.port,
            reuse_port=args.workers > 1 or args.reuse_port,
            print=None,
            access_log=None,
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tasks.serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="model.tar.gz: a path, file:// or s3://")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port, each with the model",
    )
    parser.add_argument("--max-batch", type=int, default=32, help="requests predicted together")
    parser.add_argument(
        "--batch-wait-ms", type=float, default=5.0, help="how long a request waits for company"
    )
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    if args.workers < 1 or args.max_batch < 1:
        print("--workers and --max-batch must be at least 1", file=sys.stderr)
        return 2
    if args.workers > 1:
        # One process per worker, each binding the same port (SO_REUSEPORT): the kernel spreads
        # the connections. Forking after TensorFlow loaded is not safe, so none is loaded here.
        command = [
            sys.executable,
            "-m",
            "tasks.serve",
            *(argv if argv is not None else sys.argv[1:]),
        ]
        command += ["--workers", "1", "--reuse-port"]
        children = [subprocess.Popen(command) for _ in range(args.workers)]
        try:
            return max(child.wait() for child in children)
        finally:
            for child in children:
                child.terminate()
    from tasks.contract import run_job

    return run_job(lambda: serve(args), None)


if __name__ == "__main__":
    sys.exit(main())
