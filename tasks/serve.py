"""`python -m tasks.serve --model MODEL.tar.gz|URI [--port 8080] [--workers N]`: a real-time
endpoint with the managed inference container's contract.

`GET /ping` answers 200 once the model is loaded. `POST /invocations` takes one image
(`Content-Type` image/jpeg, image/png or application/x-image) and answers in the type `Accept`
asks for, among those the model's algorithm offers (tasks/serving/responses.py): 415 or 406
with a sentence for other types, 400 with a sentence for an image that is corrupt or over the
caps of tasks.limits, and the server keeps serving. A request that finds the model idle is
predicted at once; those that arrive while it predicts form the next batch (up to --max-batch),
which also waits for the clients the last batch answered, if their connections are still open,
at most a quarter of that batch's predict time (a lone client never waits), and for any other
company at most --batch-wait-ms (0 by default); through the same code as batch transform.
TensorFlow runs one op at a time (--inter-op-threads 1: a served graph is a chain of ops, and
more threads spin on the cores the server needs), each op on every core (--intra-op-threads).
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

from tasks.errors import InputError
from tasks.serving.layout import fetch_model
from tasks.serving.responses import Responses
from tasks.serving.server import Batcher, log, make_app, run_endpoint


def serve(args: argparse.Namespace) -> None:
    """Load the model, then answer requests until stopped."""
    import tensorflow as tf

    from tasks.inference import LoadedModel

    # Before TensorFlow starts its thread pools: a served graph is a chain of ops, so threads
    # between ops mostly spin, on the cores the event loop needs.
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)

    with (
        tempfile.TemporaryDirectory(prefix="serve-") as tmp,
        LoadedModel(fetch_model(args.model, Path(tmp))) as model,
    ):
        if "responses" not in model.spec.entry_points:
            raise InputError(f"{args.model}: {model.spec.id} models have no real-time endpoint")
        responses: Responses = model.spec.entry_point("responses")
        batcher = Batcher(model, responses, args.max_batch, args.batch_wait_ms / 1000)
        log.info(
            "serving %s model %s on %s:%d (%s; TensorFlow threads: %s inter-op, %s intra-op)",
            model.spec.id,
            args.model,
            args.host,
            args.port,
            ", ".join(responses.accept),
            _threads(tf.config.threading.get_inter_op_parallelism_threads()),
            _threads(tf.config.threading.get_intra_op_parallelism_threads()),
        )
        run_endpoint(make_app(batcher), args.host, args.port, reuse_port=args.reuse_port)


def _threads(count: int) -> str:
    """A TensorFlow thread setting as the log says it (0 is TensorFlow's own choice)."""
    return str(count) if count else "one a core"


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
        "--batch-wait-ms",
        type=float,
        default=0.0,
        help="how long a batch waits for more requests (those that came while the model was "
        "busy join it anyway, and the clients the last batch answered are waited for a share "
        "of its time)",
    )
    parser.add_argument(
        "--inter-op-threads",
        type=int,
        default=1,
        help="TensorFlow's threads running independent ops at once (TF Serving's "
        "--tensorflow_inter_op_parallelism; 0: one a core)",
    )
    parser.add_argument(
        "--intra-op-threads",
        type=int,
        default=0,
        help="TensorFlow's threads inside one op (TF Serving's "
        "--tensorflow_intra_op_parallelism; 0: one a core)",
    )
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    if args.workers < 1 or args.max_batch < 1:
        print("--workers and --max-batch must be at least 1", file=sys.stderr)
        return 2
    if args.inter_op_threads < 0 or args.intra_op_threads < 0:
        print("--inter-op-threads and --intra-op-threads must be 0 or more", file=sys.stderr)
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
