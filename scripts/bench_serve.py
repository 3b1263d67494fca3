"""The real-time endpoint under load on this machine (`make bench-serve`).

For ResNet-20 on 3x32x32 and ResNet-50 on 3x224x224 (trained one short epoch on generated
images), `python -m tasks.serve` on loopback answers 1, 8 and 32 concurrent clients, each
sending one JPEG per request: p50 / p99 latency and images/s. Side by side, in the same run, the
floor: a plain Keras loop over the same images and weights (decode, resize, `predict_on_batch`
of one image), as a user would write it without a server; the ratios are the 1-client p50 over
the floor's and the server's images/s at 8 clients over the loop's. Median (range) of 3 runs.
Then a storm of 1,000 corrupt requests: the server must still answer,
its memory (RSS) before and after. The table goes into docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from scripts.bench_scaling import ml_root  # noqa: E402
from scripts.benchmark_report import (  # noqa: E402
    PINNED,
    RUNS,
    alternating,
    benchmark_parser,
    ratio_text,
    ratios,
    spread,
    write_section,
)
from tasks.data.synthetic import make_shapes_dataset  # noqa: E402
from tests.serving import post, served  # noqa: E402

MODELS = {"ResNet-20, 3x32x32": (20, 32), "ResNet-50, 3x224x224": (50, 224)}


def train(work: Path, layers: int, size: int) -> tuple[Path, list[bytes]]:
    """A model.tar.gz of `layers` on `size` px images (one short epoch), and its images."""
    images = make_shapes_dataset(work / "images", per_class=10, size=size)
    ml = ml_root(work / "ml", images, epochs=1, batch=8)
    hp = json.loads(ml.hyperparameters_path.read_text())
    hp |= {"num_layers": str(layers), "image_shape": f"3,{size},{size}"}
    ml.hyperparameters_path.write_text(json.dumps(hp))
    command = [sys.executable, "-m", "tasks.train", "--algorithm", "image-classification"]
    subprocess.run(
        [*command, "--ml-root", str(ml.root)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL
    )
    return ml.model_archive, [p.read_bytes() for p in sorted(images.rglob("*.jpg"))]


def load(url: str, images: list[bytes], clients: int, requests: int) -> dict[str, float]:
    """p50 / p99 latency (ms) and images/s of `requests` requests from `clients` threads, each
    on its own kept-alive connection (as HTTP clients do; a new connection a request would
    measure the client's TCP setup, not the server)."""
    address = urlsplit(url)
    connections = threading.local()

    def one(i: int) -> float:
        if not hasattr(connections, "http"):
            connections.http = HTTPConnection(address.hostname, address.port, timeout=120)
            connections.http.connect()
            # As HTTP client libraries do (urllib3): headers and body are two writes, and
            # Nagle's algorithm would hold the body for the server's delayed ACK.
            connections.http.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        started = time.perf_counter()
        connections.http.request(
            "POST", "/invocations", images[i % len(images)], {"Content-Type": "image/jpeg"}
        )
        response = connections.http.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"request {i}: HTTP {response.status}")
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = sorted(pool.map(one, range(requests)))
    seconds = time.perf_counter() - started
    return {
        "p50": 1000 * statistics.median(latencies),
        "p99": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "rate": requests / seconds,
    }


def keras_loop(model: Path, images: list[bytes], size: int):
    """The floor: a plain Keras loop in-process, decode, resize and `predict_on_batch` of one
    image (the fastest of Keras' own calls for one image: `predict` adds a dataset per call).
    Returns a function of a count: (p50 ms of one image, images/s)."""
    import keras
    import tensorflow as tf

    from tasks.algorithms.image_classification.hyperparameters import (
        ImageClassificationHyperparameters,
    )
    from tasks.algorithms.image_classification.initial_weights import previous_model
    from tasks.artifact import extract_artifact

    with tempfile.TemporaryDirectory() as tmp:
        extracted = extract_artifact(model, Path(tmp))
        hp = ImageClassificationHyperparameters.from_strings(extracted.manifest.hyperparameters)
        network: keras.Model = previous_model(model.parent, hp)

    def predict(blob: bytes):
        pixels = tf.image.resize(tf.io.decode_jpeg(blob, channels=3), (size, size))
        return network.predict_on_batch(pixels[None])

    predict(images[0])  # warm-up

    def run(count: int) -> dict[str, float]:
        times = []
        for i in range(count):
            started = time.perf_counter()
            predict(images[i % len(images)])
            times.append(time.perf_counter() - started)
        return {"p50": 1000 * statistics.median(times), "rate": count / sum(times)}

    return run


def rss_mib(pid: int) -> float:
    """Resident memory of the process listening (the server, a child of `served`'s process)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def server_pid(port: int) -> int:
    found = subprocess.run(
        ["pgrep", "-f", f"tasks.serve .*--port {port}"], capture_output=True, text=True
    )
    return int(found.stdout.split()[0])


CLIENTS = (1, 8, 32)


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--requests", type=int, default=400, help="per run at 8 and 32 clients")
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    rows = []
    storm: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, (layers, size) in MODELS.items():
            model, images = train(Path(tmp) / str(layers), layers, size)
            loop = keras_loop(model, images, size)
            with served(model) as url:
                load(url, images, 1, 10)  # warm-up
                results = alternating(_measures(url, images, loop, args.requests), args.runs)
                if not storm:
                    storm = corrupt_storm(url, images)
            floor, *served_runs = results
            by_clients = dict(zip(CLIENTS, served_runs, strict=True))
            rows.append(_row(label, floor, by_clients))
            print(rows[-1], flush=True)
    write_section(
        args.output,
        "Real-time endpoint (`make bench-serve`)",
        "Command: `make bench-serve` (`.venv-trainer/bin/python scripts/bench_serve.py`): "
        "`python -m tasks.serve` on loopback with its defaults (batches of up to 32; a request "
        "that finds the model idle is predicted at once, those arriving meanwhile form the "
        "next batch, which waits for the clients the last batch answered at most a quarter of "
        "its predict time; TensorFlow's threads: 1 between ops, one a core inside each; the "
        "exported graph has its batch normalizations folded into the convolutions), one JPEG "
        f"per request, {args.requests // 2} requests from 1 client, "
        f"{args.requests} from 8 and from 32 concurrent clients. The floor is the model's own "
        "time for one image in-process: a plain Keras loop on the same weights and images "
        "(decode, resize, `model.predict_on_batch` of one image), its p50 and images/s. "
        f"Median (range) of {args.runs} runs, the loop and the three loads alternating; ratios "
        f"from each run's pair. On the build machine ({os.cpu_count()} cores, no GPU). Goals: "
        "1 client p50 <= 1.3x the floor; 8 clients >= 2.0x the loop's images/s. 1,000 corrupt "
        "requests (8 clients) all got 400 and the server went on serving; its memory was "
        f"{storm['before']:.0f} MiB before and {storm['after']:.0f} MiB after. " + PINNED,
        "| model | floor p50 (Keras loop) | loop img/s | 1 client p50 / p99 | 1 client p50 / floor "
        "| 8 clients p50 / p99 | 8 clients img/s | 8 clients / loop | 32 clients p50 / p99 "
        "| 32 clients img/s |",
        rows,
    )
    return 0


def _measures(url: str, images: list[bytes], loop, requests: int) -> list:
    """The floor, then the endpoint at each count of clients (half the requests for 1)."""
    counts = {1: requests // 2, 8: requests, 32: requests}
    return [lambda: loop(max(20, requests // 4))] + [
        lambda c=c: load(url, images, c, counts[c]) for c in CLIENTS
    ]


def corrupt_storm(url: str, images: list[bytes]) -> dict[str, float]:
    """1,000 corrupt requests from 8 clients: each must get 400; memory before and after."""
    pid = server_pid(int(url.rsplit(":", 1)[1]))
    before = rss_mib(pid)
    with ThreadPoolExecutor(8) as pool:
        statuses = set(
            pool.map(
                lambda i: post(url, b"\xff\xd8" + os.urandom(64), "image/jpeg")[0], range(1000)
            )
        )
    if statuses != {400}:
        raise RuntimeError(f"corrupt requests got {statuses}")
    load(url, images, 1, 5)  # still serving
    return {"before": before, "after": rss_mib(pid)}


def _row(label: str, floor: list[dict], runs: dict[int, list[dict]]) -> str:
    def values(results: list[dict], key: str) -> list[float]:
        return [r[key] for r in results]

    def latency(results: list[dict]) -> str:
        return f"{spread(values(results, 'p50'), 1)} / {spread(values(results, 'p99'), 1)} ms"

    to_floor = [o / f for o, f in zip(values(runs[1], "p50"), values(floor, "p50"), strict=True)]
    to_loop = ratios(values(floor, "rate"), values(runs[8], "rate"), lower_is_better=False)
    return (
        f"| {label} | {spread(values(floor, 'p50'), 1)} ms | {spread(values(floor, 'rate'), 1)} "
        f"| {latency(runs[1])} | {ratio_text(to_floor)} | {latency(runs[8])} "
        f"| {spread(values(runs[8], 'rate'), 1)} "
        f"| {ratio_text(to_loop)} "
        f"| {latency(runs[32])} | {spread(values(runs[32], 'rate'), 1)} |"
    )


if __name__ == "__main__":
    sys.exit(main())
