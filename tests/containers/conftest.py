"""The images as the cluster runs them, in a real container engine (podman here; `make images`
builds them first, reusing the engine's cache). Every trainer container runs as the hardened pod
does: uid 1000, read-only root filesystem, a tmpfs /tmp, no capabilities, no network."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from base_images import engine  # noqa: E402

TRAINER = "localhost/vision-pipelines-trainer:latest"
AIRFLOW = "localhost/vision-pipelines-airflow:latest"
POD_USER = "1000:1000"
HARDENED = [
    "--pull=never",
    f"--user={POD_USER}",
    "--read-only",
    "--tmpfs=/tmp:rw,size=512m",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
]


def writable(path: Path) -> Path:
    """`path` (made if missing) owned by the pod's user, as the pod's volume would be."""
    path.mkdir(parents=True, exist_ok=True)
    for folder, dirs, files in os.walk(path):
        for name in [folder, *(os.path.join(folder, f) for f in dirs + files)]:
            if os.geteuid() == 0:
                os.lchown(name, 1000, 1000)
            elif not os.path.islink(name):
                os.chmod(name, 0o777 if os.path.isdir(name) else 0o666)
    return path


@dataclass
class Engine:
    tool: str
    built: set[str] = field(default_factory=set)

    def require(self, image: str) -> None:
        """Fail (not skip: `make test` builds the images first) when `image` is missing."""
        if image not in self.built:
            found = subprocess.run([self.tool, "image", "inspect", image], capture_output=True)
            if found.returncode != 0:
                pytest.fail(f"{image} is not built: run `make images` first ({self.tool})")
            self.built.add(image)

    def command(
        self,
        image: str,
        *args: str,
        volumes: dict[Path, str] | None = None,
        env: dict[str, str] | None = None,
        network: str = "none",
        name: str | None = None,
        hardened: bool = True,
        ports: dict[int, int] | None = None,
    ) -> list[str]:
        self.require(image)
        command = [self.tool, "run", "--rm", f"--network={network}"]
        command += HARDENED if hardened else ["--pull=never"]
        for host, container in (ports or {}).items():
            command += ["-p", f"127.0.0.1:{host}:{container}"]
        if name:
            command += [f"--name={name}", f"--hostname={name}"]
        for source, target in (volumes or {}).items():
            command += ["-v", f"{source}:{target}"]
        for key, value in (env or {}).items():
            command += ["-e", f"{key}={value}"]
        return [*command, image, *args]

    def run(
        self, image: str, *args: str, timeout: float = 600, **options
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.command(image, *args, **options), capture_output=True, text=True, timeout=timeout
        )


@pytest.fixture(scope="session")
def podman() -> Engine:
    return Engine(engine())
