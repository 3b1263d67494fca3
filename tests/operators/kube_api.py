"""A stand-in Kubernetes API server on loopback for the kubernetes runner's tests.

It serves the REST paths our steps use (pods with their logs, services, batch/v1 jobs) over
plain HTTP, so the provider's hook, the kubernetes client and the triggerer's async client run
as they do against a cluster. Every object it stores or returns is checked against the
Kubernetes OpenAPI schema (kubernetes_validate, strict). Status transitions are scripted by the
test (`set_pod_phase`, `finish_job`); creating an existing name answers 409, a missing one 404.
A Job's pods appear when it is created (one per completion index, Pending), and go with it.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate

KUBERNETES_VERSION = "1.33"
_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>batch)/v1)/namespaces/(?P<ns>[^/]+)/(?P<plural>pods|services|jobs)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>log|status))?$"
)
_KINDS = {"pods": ("v1", "Pod"), "services": ("v1", "Service"), "jobs": ("batch/v1", "Job")}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _matches(labels: dict, selector: str) -> bool:
    """Equality-based label selectors (`a=b`, `a==b`, `a!=b`, `a`, `!a`), comma-separated."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = re.split("==?", term, maxsplit=1)
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class KubeApi:
    """The server's state and what the test scripts; `requests` logs (method, path)."""

    def __init__(self) -> None:
        self.jobs_end: tuple[bool, str] | None = None
        """(succeeded, reason) every new Job ends with at once; None: the test ends it."""
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.logs: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self._versions = itertools.count(1)

    # -- what tests script and read
    def names(self, plural: str) -> list[str]:
        with self.lock:
            return sorted(name for (p, _, name) in self.objects if p == plural)

    def get(self, plural: str, namespace: str, name: str) -> dict:
        with self.lock:
            return self.objects[(plural, namespace, name)]

    def set_pod_phase(self, namespace: str, name: str, phase: str, exit_code: int = 0) -> None:
        with self.lock:
            pod = self.objects[("pods", namespace, name)]
            container = pod["spec"]["containers"][0]["name"]
            state: dict = {"waiting": {"reason": "ContainerCreating"}}
            if phase == "Running":
                state = {"running": {"startedAt": _now()}}
            elif phase in ("Succeeded", "Failed"):
                state = {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": "Completed" if exit_code == 0 else "Error",
                        "finishedAt": _now(),
                    }
                }
            pod["status"] = {
                "phase": phase,
                "containerStatuses": [
                    {
                        "name": container,
                        "image": pod["spec"]["containers"][0]["image"],
                        "imageID": "",
                        "ready": phase == "Running",
                        "restartCount": 0,
                        "state": state,
                    }
                ],
            }
            self._store("pods", pod)

    def finish_job(
        self, namespace: str, name: str, *, succeeded: bool, reason: str = "BackoffLimitExceeded"
    ) -> None:
        """Every pod of the Job ends (Succeeded or Failed; a Job past its deadline has pods
        that never started) and the Job gets its condition with `reason`."""
        if reason != "DeadlineExceeded":
            for pod in self.pods_of(namespace, name):
                self.set_pod_phase(
                    namespace, pod, "Succeeded" if succeeded else "Failed", 0 if succeeded else 1
                )
        with self.lock:
            job = self.objects[("jobs", namespace, name)]
            count = job["spec"].get("completions") or 1
            kind = "Complete" if succeeded else "Failed"
            job["status"] = {
                "succeeded" if succeeded else "failed": count,
                "conditions": [
                    {
                        "type": kind,
                        "status": "True",
                        "lastTransitionTime": _now(),
                        "reason": "Completed" if succeeded else reason,
                        "message": "" if succeeded else f"Job failed: {reason}",
                    }
                ],
            }
            self._store("jobs", job)

    def pods_of(self, namespace: str, job: str) -> list[str]:
        with self.lock:
            return sorted(
                name
                for (p, ns, name), obj in self.objects.items()
                if p == "pods"
                and ns == namespace
                and obj["metadata"].get("labels", {}).get("job-name") == job
            )

    # -- the API
    def _store(self, plural: str, obj: dict) -> dict:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        obj["metadata"]["resourceVersion"] = str(next(self._versions))
        meta = obj["metadata"]
        self.objects[(plural, meta["namespace"], meta["name"])] = obj
        return obj

    def create(self, plural: str, namespace: str, body: dict) -> tuple[int, dict]:
        with self.lock:
            api_version, kind = _KINDS[plural]
            meta = body.setdefault("metadata", {})
            if "name" not in meta and "generateName" in meta:
                meta["name"] = meta["generateName"] + f"{next(self._versions):05d}"
            meta.update(
                namespace=namespace, creationTimestamp=_now(), uid=f"uid-{plural}-{meta['name']}"
            )
            if (plural, namespace, meta["name"]) in self.objects:
                return 409, _status(
                    409, "AlreadyExists", f'{plural} "{meta["name"]}" already exists'
                )
            body.update(apiVersion=api_version, kind=kind)
            if plural == "pods":
                body.setdefault("status", {"phase": "Pending"})
                self.logs.setdefault(meta["name"], [f"log line of {meta['name']}"])
            obj = self._store(plural, body)
            if plural == "jobs":
                self._start_pods(obj)
        if plural == "jobs" and self.jobs_end is not None:
            self.finish_job(
                namespace, meta["name"], succeeded=self.jobs_end[0], reason=self.jobs_end[1]
            )
        return 201, obj

    def _start_pods(self, job: dict) -> None:
        template, name = job["spec"]["template"], job["metadata"]["name"]
        indexed = job["spec"].get("completionMode") == "Indexed"
        for index in range(job["spec"].get("parallelism") or 1):
            labels = {
                **template["metadata"].get("labels", {}),
                "job-name": name,
                "controller-uid": job["metadata"]["uid"],
            }
            annotations = dict(template["metadata"].get("annotations") or {})
            pod_name = f"{name}-{index}-x{index:04d}"
            if indexed:
                labels["batch.kubernetes.io/job-completion-index"] = str(index)
                annotations["batch.kubernetes.io/job-completion-index"] = str(index)
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod_name,
                    "namespace": job["metadata"]["namespace"],
                    "labels": labels,
                    "annotations": annotations,
                    "creationTimestamp": _now(),
                    "uid": f"uid-pod-{pod_name}",
                },
                "spec": json.loads(json.dumps(template["spec"])),
                "status": {"phase": "Pending"},
            }
            if indexed:
                pod["spec"]["hostname"] = f"{name}-{index}"
            self._store("pods", pod)
            self.logs.setdefault(pod_name, [f"log line of {pod_name}"])

    def delete(self, plural: str, namespace: str, name: str) -> tuple[int, dict]:
        with self.lock:
            obj = self.objects.pop((plural, namespace, name), None)
            if obj is None:
                return 404, _status(404, "NotFound", f'{plural} "{name}" not found')
            if plural == "jobs":  # the propagation policy: the Job's pods go with it
                for key in [
                    k
                    for k, o in self.objects.items()
                    if k[0] == "pods" and o["metadata"].get("labels", {}).get("job-name") == name
                ]:
                    del self.objects[key]
            return 200, obj

    def patch(self, plural: str, namespace: str, name: str, body: dict) -> tuple[int, dict]:
        with self.lock:
            obj = self.objects.get((plural, namespace, name))
            if obj is None:
                return 404, _status(404, "NotFound", f'{plural} "{name}" not found')
            labels = (body.get("metadata") or {}).get("labels") or {}
            obj["metadata"].setdefault("labels", {}).update(labels)
            return 200, self._store(plural, obj)

    def read(self, plural: str, namespace: str, name: str | None, query: dict) -> tuple[int, dict]:
        with self.lock:
            if name is not None:
                obj = self.objects.get((plural, namespace, name))
                if obj is None:
                    return 404, _status(404, "NotFound", f'{plural} "{name}" not found')
                return 200, obj
            selector = query.get("labelSelector", [""])[0]
            items = [
                o
                for (p, ns, _), o in sorted(self.objects.items())
                if p == plural
                and ns == namespace
                and _matches(o["metadata"].get("labels", {}), selector)
            ]
            api_version, kind = _KINDS[plural]
            return 200, {
                "apiVersion": api_version,
                "kind": f"{kind}List",
                "metadata": {"resourceVersion": "1"},
                "items": items,
            }


def _status(code: int, reason: str, message: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _handler(api: KubeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # the test's output stays the test's
            pass

        def _answer(self, code: int, body: dict | str) -> None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(code)
            kind = "text/plain" if isinstance(body, str) else "application/json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, method: str) -> None:
            url = urlsplit(self.path)
            api.requests.append((method, url.path))
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            found = _PATH.match(url.path)
            if found is None:
                self._answer(404, _status(404, "NotFound", f"no route {url.path}"))
                return
            plural, ns, name, sub = found["plural"], found["ns"], found["name"], found["sub"]
            if sub == "log":
                lines = api.logs.get(name)
                if lines is None:
                    self._answer(404, _status(404, "NotFound", f'pods "{name}" not found'))
                else:
                    self._answer(200, "".join(f"{_now()} {line}\n" for line in lines))
                return
            if method == "GET":
                self._answer(*api.read(plural, ns, name, parse_qs(url.query)))
            elif method == "POST" and name is None:
                self._answer(*api.create(plural, ns, body))
            elif method == "DELETE" and name is not None:
                self._answer(*api.delete(plural, ns, name))
            elif method == "PATCH" and name is not None:
                self._answer(*api.patch(plural, ns, name, body))
            else:
                self._answer(405, _status(405, "MethodNotAllowed", f"{method} {url.path}"))

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_DELETE(self) -> None:
            self._route("DELETE")

        def do_PATCH(self) -> None:
            self._route("PATCH")

    return Handler


@contextmanager
def kube_api(folder: Path) -> Iterator[tuple[KubeApi, Path]]:
    """A running stand-in API server and a kubeconfig file that points at it."""
    api = KubeApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    config = folder / "kubeconfig"
    config.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "stand-in",
                "clusters": [{"name": "stand-in", "cluster": {"server": url}}],
                "contexts": [
                    {
                        "name": "stand-in",
                        "context": {"cluster": "stand-in", "user": "u", "namespace": "default"},
                    }
                ],
                "users": [{"name": "u", "user": {"token": "stand-in-token"}}],
            }
        )
    )
    try:
        yield api, config
    finally:
        server.shutdown()
        server.server_close()
