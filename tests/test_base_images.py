"""Images are built only on bases pinned by digest (audit item 3: the Dockerfiles named their bases
by tag, so a retagged base changed what a rebuild ran). `docker` is a stand-in that records its
command lines and answers registry look-ups; nothing reaches a registry."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "base_images.py"
DIGEST = "sha256:" + "0123456789abcdef" * 4
FAKE_DOCKER = """#!/bin/sh
echo "$@" >> "$DOCKER_LOG"
if [ "$1" = buildx ]; then
  if [ -n "$REGISTRY_DOWN" ]; then
    echo "dial tcp: lookup registry-1.docker.io: no such host" >&2; exit 1
  fi
  printf '{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "%s"}' "$DIGEST"
fi
"""

spec = importlib.util.spec_from_file_location("base_images", SCRIPT)
base_images = sys.modules["base_images"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(base_images)


@pytest.fixture
def docker(tmp_path):
    """A `docker` on PATH that logs its arguments; returns the log's path."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    log = tmp_path / "docker.log"
    log.touch()
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "DOCKER_LOG": str(log),
        base_images.ENGINE_ENV: "docker",
    }


def run(lock: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--lock", str(lock), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "DIGEST": DIGEST, **env},
    )


def test_the_dockerfiles_take_their_base_from_the_lock(tmp_path):
    """No Dockerfile under docker/ names a base by tag; the old ones did and are refused."""
    assert run(base_images.LOCK, "check", env={}).returncode == 0
    for dockerfile in sorted((ROOT / "docker").glob("*/Dockerfile")):
        assert base_images.dockerfile_problems(dockerfile) == []
    old = tmp_path / "Dockerfile"
    old.write_text("ARG BASE=apache/airflow:3.3.2-python3.11\nFROM ${BASE}\nRUN true\n")
    assert base_images.dockerfile_problems(old) == [
        f"{old}:1: default base 'apache/airflow:3.3.2-python3.11' is not pinned by digest; "
        "leave ARG BASE without a default (the build passes docker/base-images.lock's) or give "
        "it one of the form name:tag@sha256:<64 hex digits>"
    ]
    old.write_text("FROM python:3.12-slim AS build\nFROM scratch\n")
    (problem,) = base_images.dockerfile_problems(old)
    assert problem.startswith(f"{old}:1: FROM 'python:3.12-slim' is not pinned by digest")
    old.write_text(f"ARG BASE=python:3.12-slim@{DIGEST}\nFROM ${{BASE}}\nFROM x:1@{DIGEST}\n")
    assert base_images.dockerfile_problems(old) == []


def test_a_base_pinned_by_tag_only_is_refused_before_anything_is_built(tmp_path, docker):
    lock = tmp_path / "base-images.lock"
    lock.write_text(
        f"# bases\nairflow apache/airflow:3.3.2-python3.11@{DIGEST}\n"
        "trainer tensorflow/tensorflow:2.21.0-gpu\n"
    )
    done = run(lock, "build", env=docker)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"error: {lock}:3: base 'tensorflow/tensorflow:2.21.0-gpu' of image 'trainer' is not "
        "pinned by digest; allowed: name:tag@sha256:<64 hex digits> (run `make pin-images` "
        "where its registry is reachable)\n"
    )
    assert Path(docker["DOCKER_LOG"]).read_text() == ""
    lock.write_text("trainer tensorflow/tensorflow:2.21.0-gpu@sha256:abc\n")
    assert "is not pinned by digest" in run(lock, "build", env=docker).stderr
    lock.write_text("worker python:3.12\n")
    assert run(lock, "build", env=docker).stderr == (
        f"error: {lock}:1: image 'worker' has no docker/worker/Dockerfile\n"
    )


def test_pinning_writes_the_registry_digest_and_the_build_uses_it(tmp_path, docker):
    lock = tmp_path / "base-images.lock"
    lock.write_text((ROOT / "docker" / "base-images.lock").read_text())
    before = lock.read_text()
    down = run(lock, "pin", env={**docker, "REGISTRY_DOWN": "1"})
    assert down.returncode == 2 and "cannot look up the digest of" in down.stderr
    assert "no such host" in down.stderr and lock.read_text() == before
    pinned = run(lock, "pin", env=docker)
    assert pinned.returncode == 0, pinned.stderr
    bases = base_images.read_lock(lock)
    tags = base_images.read_lock(base_images.LOCK)
    assert {b.image: b.reference for b in bases} == {
        b.image: f"{b.reference}@{DIGEST}" for b in tags
    }
    assert pinned.stdout.split() == [word for b in bases for word in ("pinned", b.reference)]
    assert [line for line in lock.read_text().splitlines() if line.startswith("#")] == [
        line for line in before.splitlines() if line.startswith("#")
    ]
    Path(docker["DOCKER_LOG"]).write_text("")
    built = run(lock, "build", "trainer", "--tag", "0.1.0", env=docker)
    assert built.returncode == 0, built.stderr
    (trainer,) = [base for base in bases if base.image == "trainer"]
    assert Path(docker["DOCKER_LOG"]).read_text().split() == [
        "build",
        "--build-arg",
        f"BASE={trainer.reference}",
        "-f",
        str(ROOT / "docker" / "trainer" / "Dockerfile"),
        "-t",
        "vision-pipelines-trainer:0.1.0",
        str(ROOT),
    ]
