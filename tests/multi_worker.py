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


@dataclass
class Worker:
    process: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text()

    def fingerprint(self) -> str:
        found = FINGERPRINT.findall(self.text())
        assert found, self.text()[-3000:]
        return found[-1]


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
            raise AssertionError(
                f"workers still running after {timeout}s: {w.text()[-3000:]}"
            ) from e
    return codes
