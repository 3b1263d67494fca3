"""Start `python -m tasks.train` as several workers on loopback, as a launcher would."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FINGERPRINT = re.compile(r"weights fingerprint ([0-9a-f]+)")
# A Python traceback, or TensorFlow's own error line (a collective's first failure names its
# cause; the later ones only say "aborted"), but not the probe for a GPU.
FIRST_ERROR = re.compile(r"^(Traceback .*|E\d{4} (?!.*cuInit).*)$", re.MULTILINE)


@dataclass
class Worker:
    process: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text()

    def fingerprint(self) -> str:
        found = FINGERPRINT.findall(self.text())
        assert found, self.story()
        return found[-1]

    def story(self) -> str:
        """The log's first error and its last lines, for a failed test's message."""
        text = self.text()
        first = FIRST_ERROR.search(text)
        cause = text[first.start() : first.start() + 2000] if first else "(none logged)"
        return f"{self.log}: first error: {cause}\n... last lines:\n{text[-2000:]}"


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def tf_configs(count: int) -> list[str]:
    hosts = [f"127.0.0.1:{p}" for p in free_ports(count)]
    return [
        json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}})
        for i in range(count)
    ]


def start_workers(
    algorithm: str,
    ml_roots: list[Path],
    logs: Path,
    env: dict[str, str] | None = None,
    *,
    one_core_each: bool = False,
) -> list[Worker]:
    """One `python -m tasks.train` per ml-root (the same root may repeat), worker i on the i-th;
    `one_core_each`: worker i runs on CPU i alone (taskset), data pipeline included."""
    logs.mkdir(parents=True, exist_ok=True)
    workers = []
    for i, (config, root) in enumerate(zip(tf_configs(len(ml_roots)), ml_roots, strict=True)):
        log = logs / f"worker-{i}.log"
        pin = ["taskset", "-c", str(i)] if one_core_each else []
        process = subprocess.Popen(
            [
                *pin,
                sys.executable,
                "-m",
                "tasks.train",
                "--algorithm",
                algorithm,
                "--ml-root",
                root,
            ],
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "TF_CONFIG": config,
                "CUDA_VISIBLE_DEVICES": "",
                **(env or {}),
            },
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        workers.append(Worker(process, log))
    return workers


def wait(workers: list[Worker], timeout: float = 600) -> list[int]:
    codes = []
    for w in workers:
        try:
            codes.append(w.process.wait(timeout=timeout))
        except subprocess.TimeoutExpired as e:
            for other in workers:
                other.process.kill()
            raise AssertionError(f"workers still running after {timeout}s: {w.story()}") from e
    return codes


def assert_succeeded(workers: list[Worker], timeout: float = 600) -> None:
    """Every worker exits 0; otherwise each failed one's story, in full."""
    codes = wait(workers, timeout)
    ended = zip(workers, codes, strict=True)
    failed = [f"exit {code}: {w.story()}" for w, code in ended if code != 0]
    if failed:
        raise AssertionError("\n\n".join(failed))
