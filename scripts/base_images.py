"""`make images` / `make pin-images`: the images under docker/ built on bases pinned by content.

The Dockerfiles have no default base (`ARG BASE`, `FROM ${BASE}`). Two kinds of base:
- `--base official`: the bases of docker/base-images.lock, one `IMAGE REFERENCE` a line. Any
  reference that is not `name:tag@sha256:<64 hex digits>` is refused before anything is built.
  `pin` asks the registry for each tag's digest (`docker buildx imagetools inspect`) and writes
  the lock again with it (atomically).
- `--base debian`: for machines that reach no container registry, one local base made from
  Debian's mirror with debootstrap (bookworm, its Python 3.11, tini), imported as
  `localhost/vision-pipelines-debian:bookworm` and passed to the build by its image ID (a content
  digest). Made once; remove that image to make it again with the latest security updates.
- `--base auto` (what `make images` uses): official when every base is pinned and the registry
  answers, else debian, saying why.
Then `ENGINE build --build-arg BASE=<base> -f docker/IMAGE/Dockerfile -t vision-pipelines-IMAGE`,
with ENGINE podman where installed, else docker (`VISION_PIPELINES_CONTAINER_ENGINE` chooses).
`check` refuses a Dockerfile that names a base by tag (a FROM, or an ARG default, without a
digest).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tasks.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "docker" / "base-images.lock"
SHA256 = r"sha256:[0-9a-f]{64}"
DIGEST = re.compile(rf"@{SHA256}$")
ALLOWED = "name:tag@sha256:<64 hex digits>"
FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)", re.IGNORECASE)
ARG = re.compile(r"^\s*ARG\s+(\w+)(?:=(\S*))?", re.IGNORECASE)
ENGINE_ENV = "VISION_PIPELINES_CONTAINER_ENGINE"
DEBIAN_BASE = "localhost/vision-pipelines-debian:bookworm"
DEBIAN_MIRROR = os.environ.get("VISION_PIPELINES_DEBIAN_MIRROR", "http://deb.debian.org/debian")
DEBIAN_PACKAGES = "python3,python3-venv,tini,ca-certificates"
REGISTRY = ("registry-1.docker.io", 443)
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
PODMAN_CONF = ROOT / "docker" / "podman" / "containers.conf"


class BaseImageError(Exception):
    """A base image named by tag only, or a lock or registry answer we cannot use."""


@dataclass(frozen=True)
class Base:
    image: str
    reference: str
    line: int


def dockerfile_of(image: str) -> Path:
    return ROOT / "docker" / image / "Dockerfile"


def read_lock(lock: Path) -> list[Base]:
    """The lock's entries; a malformed line or an image without a Dockerfile is refused."""
    bases = []
    for number, text in enumerate(lock.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        fields = text.split()
        if len(fields) != 2:
            raise BaseImageError(
                f"{lock}:{number}: {text.strip()!r} must be two fields, IMAGE REFERENCE"
            )
        if not dockerfile_of(fields[0]).is_file():
            raise BaseImageError(
                f"{lock}:{number}: image {fields[0]!r} has no docker/{fields[0]}/Dockerfile"
            )
        bases.append(Base(fields[0], fields[1], number))
    return bases


def unpinned(lock: Path, bases: list[Base]) -> list[str]:
    """One message for each base that is not pinned by digest."""
    return [
        f"{lock}:{base.line}: base {base.reference!r} of image {base.image!r} is not pinned by "
        f"digest; allowed: {ALLOWED} (run `make pin-images` where its registry is reachable)"
        for base in bases
        if not DIGEST.search(base.reference)
    ]


def dockerfile_problems(dockerfile: Path) -> list[str]:
    """Every place where `dockerfile` names a base image by tag only."""
    problems = []
    args: dict[str, tuple[int, str]] = {}
    for number, text in enumerate(dockerfile.read_text(encoding="utf-8").splitlines(), 1):
        if arg := ARG.match(text):
            args[arg.group(1)] = (number, arg.group(2) or "")
        elif base := FROM.match(text):
            name = base.group(1)
            variable = re.fullmatch(r"\$\{?(\w+)\}?", name)
            if variable:
                line, default = args.get(variable.group(1), (number, ""))
                if default and not DIGEST.search(default):
                    problems.append(
                        f"{dockerfile}:{line}: default base {default!r} is not pinned by digest; "
                        f"leave ARG {variable.group(1)} without a default (the build passes "
                        "docker/base-images.lock's) or give it one of the form " + ALLOWED
                    )
            elif not DIGEST.search(name) and name.lower() != "scratch":
                problems.append(
                    f"{dockerfile}:{number}: FROM {name!r} is not pinned by digest; "
                    f"allowed: {ALLOWED}, or ${{BASE}} from docker/base-images.lock"
                )
    return problems


def registry_digest(reference: str) -> str:
    """The digest the registry gives `reference`'s tag now (of its manifest list, if any)."""
    name = DIGEST.sub("", reference)
    answer = subprocess.run(
        ["docker", "buildx", "imagetools", "inspect", "--format", "{{json .Manifest}}", name],
        capture_output=True,
        text=True,
    )
    if answer.returncode != 0:
        said = (answer.stderr.strip() or answer.stdout.strip() or "no output").splitlines()[0]
        raise BaseImageError(
            f"cannot look up the digest of {name!r} (this needs the Docker CLI's buildx plugin and "
            f"the registry): {said}"
        )
    try:
        digest = json.loads(answer.stdout)["digest"]
    except (ValueError, KeyError, TypeError):
        digest = None
    if not isinstance(digest, str) or not re.fullmatch(SHA256, digest):
        raise BaseImageError(f"the registry's answer for {name!r} has no sha256 digest")
    return digest


def pin(lock: Path) -> list[str]:
    """Write every tag's current digest into `lock` (atomically); the new references."""
    lines = lock.read_text(encoding="utf-8").splitlines()
    pinned = []
    for base in read_lock(lock):
        reference = f"{DIGEST.sub('', base.reference)}@{registry_digest(base.reference)}"
        lines[base.line - 1] = f"{base.image} {reference}"
        pinned.append(reference)
    atomic_write_text(lock, "\n".join(lines) + "\n")
    return pinned


def engine() -> str:
    """The container engine: $VISION_PIPELINES_CONTAINER_ENGINE, else podman where installed,
    else docker. Podman gets docker/podman/containers.conf unless CONTAINERS_CONF names another
    (this process and the ones it starts)."""
    tool = os.environ.get(ENGINE_ENV) or ("podman" if shutil.which("podman") else "docker")
    if Path(tool).name == "podman":
        os.environ.setdefault("CONTAINERS_CONF", str(PODMAN_CONF))
    return tool


def _image_id(name: str) -> str | None:
    found = subprocess.run(
        [engine(), "image", "inspect", "--format", "{{.Id}}", name], capture_output=True, text=True
    )
    if found.returncode != 0:
        return None
    return found.stdout.strip() or None


def debian_base() -> str:
    """The image ID of the local Debian base, made with debootstrap when it is not there yet."""
    if existing := _image_id(DEBIAN_BASE):
        return existing
    if not shutil.which("debootstrap"):
        raise BaseImageError(
            "making the Debian base needs debootstrap (apt-get install debootstrap)"
        )
    print(f"making {DEBIAN_BASE} from {DEBIAN_MIRROR} with debootstrap ...", flush=True)
    with tempfile.TemporaryDirectory(prefix="vision-pipelines-debian-") as scratch:
        root = Path(scratch, "root")
        strap = [
            "debootstrap",
            "--variant=minbase",
            f"--include={DEBIAN_PACKAGES}",
            "bookworm",
            str(root),
            DEBIAN_MIRROR,
        ]
        done = subprocess.run(strap, capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
            raise BaseImageError(f"debootstrap failed ({subprocess.list2cmdline(strap)}):\n{tail}")
        mirror = DEBIAN_MIRROR.rstrip("/")
        (root / "etc/apt/sources.list").write_text(
            f"deb {mirror} bookworm main\ndeb {mirror} bookworm-updates main\n"
            f"deb {mirror}-security bookworm-security main\n"
        )
        for cache in ("var/lib/apt/lists", "var/cache/apt/archives"):
            for entry in (root / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            [engine(), "import", "-", DEBIAN_BASE], stdin=tar.stdout, capture_output=True
        )
        tar.wait()
        if tar.returncode or imported.returncode:
            raise BaseImageError(f"{engine()} import of {DEBIAN_BASE} failed: {imported.stderr!r}")
    made = _image_id(DEBIAN_BASE)
    if made is None:
        raise BaseImageError(f"{DEBIAN_BASE} is not there after its import")
    return made


def registry_reachable(address: tuple[str, int] = REGISTRY, seconds: float = 3) -> bool:
    try:
        socket.create_connection(address, timeout=seconds).close()
    except OSError:
        return False
    return True


def chosen_base(lock: Path, bases: list[Base], wanted: str) -> str:
    """`official` or `debian`: `wanted`, or for `auto` the one this machine can build."""
    if wanted != "auto":
        return wanted
    if problems := unpinned(lock, bases):
        why = f"{len(problems)} base(s) of {lock.name} not pinned by digest"
    elif not registry_reachable():
        why = f"no answer from the registry {REGISTRY[0]}"
    else:
        return "official"
    print(f"building on the local Debian base ({why}); the official bases need --base official")
    return "debian"


def build(lock: Path, images: list[str], tag: str, base_kind: str = "official") -> None:
    """Build `images` (all when empty) on their pinned bases or on the local Debian base;
    nothing is built if any official base is not pinned."""
    bases = [base for base in read_lock(lock) if not images or base.image in images]
    missing = set(images) - {base.image for base in bases}
    if missing:
        raise BaseImageError(f"{lock}: no base listed for {', '.join(sorted(missing))}")
    kind = chosen_base(lock, bases, base_kind)
    problems = unpinned(lock, bases) if kind == "official" else []
    for base in bases:
        problems += dockerfile_problems(dockerfile_of(base.image))
    if problems:
        raise BaseImageError("\n".join(problems))
    local = debian_base() if kind == "debian" else None
    tool = engine()
    for base in bases:
        command = [tool, "build", "--build-arg", f"BASE={local or base.reference}"]
        if tool == "podman":
            # pip inside the build reaches the index only with the host's CA bundle where a
            # proxy re-signs TLS (docker/trainer/Dockerfile reads it from /host-ca.crt).
            command += ["--network=host", "--pull=never" if local else "--pull=missing"]
            if HOST_CA.is_file():
                command += ["-v", f"{HOST_CA}:/host-ca.crt:ro"]
        command += [
            "-f",
            str(dockerfile_of(base.image)),
            "-t",
            f"vision-pipelines-{base.image}:{tag}",
            str(ROOT),
        ]
        print("running:", subprocess.list2cmdline(command), flush=True)
        if subprocess.run(command).returncode != 0:
            raise BaseImageError(f"{tool} build of image {base.image!r} failed (above)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lock", type=Path, default=LOCK, help="default: %(default)s")
    commands = parser.add_subparsers(dest="command", required=True)
    build_command = commands.add_parser("build", help="build the images on their pinned bases")
    build_command.add_argument("images", nargs="*", help="default: every image in the lock")
    build_command.add_argument("--tag", default="latest", help="default: %(default)s")
    build_command.add_argument(
        "--base",
        choices=("official", "debian", "auto"),
        default="official",
        help="official: the lock's pinned bases; debian: a local debootstrap base; auto: "
        "official where pinned and the registry answers, else debian (default: %(default)s)",
    )
    commands.add_parser("pin", help="write each tag's current digest into the lock")
    commands.add_parser("check", help="refuse Dockerfiles that name a base by tag only")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build(args.lock, args.images, args.tag, args.base)
        elif args.command == "pin":
            for reference in pin(args.lock):
                print(f"pinned {reference}")
        else:
            problems = [
                problem
                for dockerfile in sorted((ROOT / "docker").glob("*/Dockerfile"))
                for problem in dockerfile_problems(dockerfile)
            ]
            if problems:
                raise BaseImageError("\n".join(problems))
    except BaseImageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
