"""Which training workers there are and which one this is: from TensorFlow's `TF_CONFIG`, the
managed service's `resourceconfig.json`, or a Kubernetes Indexed Job's pod; each form is derived
from the others, so a job started by hand with either works (formats.md, "Several training
machines"). Free of TensorFlow: the launcher side reads it too."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tasks.atomic import atomic_write_text
from tasks.errors import InputError
from tasks.settings import setting

TF_CONFIG = "TF_CONFIG"
RESOURCE_CONFIG = "resourceconfig.json"
DEFAULT_PORT = 2222
"""The workers' port when a host is named without one (TensorFlow's customary port)."""
INSTANCE_COUNT_ENV = "VISION_PIPELINES_INSTANCE_COUNT"
SUBDOMAIN_ENV = "VISION_PIPELINES_WORKER_SUBDOMAIN"
"""A Kubernetes Indexed Job's pods: their headless Service, so `<job>-<i>.<subdomain>` resolves."""
JOB_INDEX_ENV = "JOB_COMPLETION_INDEX"
HEARTBEAT_TIMEOUT_ENV = "VISION_PIPELINES_HEARTBEAT_TIMEOUT_SECONDS"


@dataclass(frozen=True)
class Workers:
    """The workers of one synchronous training job (host:port each, the chief first)."""

    hosts: tuple[str, ...]
    index: int

    @property
    def count(self) -> int:
        return len(self.hosts)

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    def part(self, size: int) -> range:
        """This worker's contiguous share of `size` items (sizes differ by at most one)."""
        start = self.index * size // self.count
        return range(start, (self.index + 1) * size // self.count)

    def tf_config(self) -> dict:
        return {
            "cluster": {"worker": list(self.hosts)},
            "task": {"type": "worker", "index": self.index},
        }

    def resource_config(self) -> dict:
        return {
            "current_host": self.hosts[self.index],
            "hosts": list(self.hosts),
            "network_interface_name": "eth0",
        }


ONE = Workers(("localhost",), 0)
"""One machine: no cluster."""


def _address(host: str) -> str:
    return host if ":" in host else f"{host}:{DEFAULT_PORT}"


def _hosts(value: object, where: str) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(h, str) and h.strip() for h in value)
    ):
        raise InputError(f"{where}: {value!r}; allowed: a non-empty list of host names")
    if len(set(value)) != len(value):
        raise InputError(f"{where}: {value!r} names a host twice; allowed: distinct hosts")
    return tuple(_address(h.strip()) for h in value)


def from_tf_config(text: str) -> Workers:
    """TensorFlow's cluster description (workers only; a "chief" task leads when present)."""
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{TF_CONFIG}: not JSON ({e.msg} at character {e.pos})") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise InputError(
            f"{TF_CONFIG}: {text[:200]!r}; allowed: "
            '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}'
        )
    unknown = set(cluster) - {"chief", "worker"}
    if unknown:
        raise InputError(
            f"{TF_CONFIG}: cluster job {sorted(unknown)[0]!r}; allowed: chief and worker "
            "(synchronous data parallelism has no parameter servers)"
        )
    hosts = _hosts(cluster.get("chief", []) + cluster.get("worker", []), f"{TF_CONFIG} cluster")
    kind, index = task.get("type"), task.get("index", 0)
    offset = len(cluster.get("chief", [])) if kind == "worker" else 0
    if kind not in cluster or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise InputError(
            f"{TF_CONFIG} task: {task!r}; allowed: a type of the cluster "
            f"({', '.join(cluster)}) and an index into its list"
        )
    return Workers(hosts, offset + index)


def from_resource_config(path: Path) -> Workers:
    """The managed service's multi-host file: this host and the sorted list of all hosts."""
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path}: {doc!r}; allowed: an object with current_host and hosts")
    hosts = _hosts(doc.get("hosts"), f"{path}: hosts")
    current = doc.get("current_host")
    if not isinstance(current, str) or _address(current) not in hosts:
        raise InputError(f"{path}: current_host {current!r}; allowed: one of hosts {doc['hosts']}")
    return Workers(hosts, hosts.index(_address(current)))


def from_indexed_job(env: Mapping[str, str], hostname: str) -> Workers | None:
    """A pod of a Kubernetes Indexed Job (parallelism = completions = instance count): pod
    `<job>-<i>` is worker i, reachable as `<job>-<i>.<subdomain>` through the headless Service."""
    count, index = env.get(INSTANCE_COUNT_ENV, ""), env.get(JOB_INDEX_ENV, "")
    if not (count.isdigit() and int(count) > 1 and index.isdigit()):
        return None
    job = hostname.rsplit("-", 1)[0]
    subdomain = env.get(SUBDOMAIN_ENV, "")
    suffix = f".{subdomain}" if subdomain else ""
    hosts = tuple(f"{job}-{i}{suffix}:{DEFAULT_PORT}" for i in range(int(count)))
    if int(index) >= len(hosts):
        raise InputError(f"{JOB_INDEX_ENV}={index}; allowed: 0..{len(hosts) - 1}")
    return Workers(hosts, int(index))


def resolve(config_dir: Path, env: Mapping[str, str] | None = None) -> Workers:
    """The workers from TF_CONFIG, resourceconfig.json or the Indexed Job, in that order."""
    env = os.environ if env is None else env
    if env.get(TF_CONFIG, "").strip():
        return from_tf_config(env[TF_CONFIG])
    if (config_dir / RESOURCE_CONFIG).exists():
        return from_resource_config(config_dir / RESOURCE_CONFIG)
    return from_indexed_job(env, os.uname().nodename) or ONE


def publish(workers: Workers, config_dir: Path) -> None:
    """Both forms for what runs next: TF_CONFIG in this process' environment, and
    resourceconfig.json when there is none (one machine: neither)."""
    if workers.count == 1:
        return
    os.environ[TF_CONFIG] = json.dumps(workers.tf_config())
    if not (config_dir / RESOURCE_CONFIG).exists():
        config_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            config_dir / RESOURCE_CONFIG, json.dumps(workers.resource_config()) + "\n"
        )


def current() -> Workers:
    """The workers this process trains with (TF_CONFIG, as `resolve` left it)."""
    text = os.environ.get(TF_CONFIG, "").strip()
    return from_tf_config(text) if text else ONE


def heartbeat_timeout_s() -> int:
    """How long the workers wait for a silent one before they give the job up (TensorFlow's
    own 10 s loses jobs to a worker stalled by a busy machine or a pod's CPU limit)."""
    return setting(HEARTBEAT_TIMEOUT_ENV)
