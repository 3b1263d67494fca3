"""`make images` / `make pin-images`: the images under docker/ built on bases pinned by digest.

The Dockerfiles have no default base (`ARG BASE`, `FROM ${BASE}`); their bases are listed in
docker/base-images.lock, one `IMAGE REFERENCE` a line. `build` refuses any reference that is not
`name:tag@sha256:<64 hex digits>` before anything is built, then runs
`docker build --build-arg BASE=<reference> -f docker/IMAGE/Dockerfile -t vision-pipelines-IMAGE`.
`pin` asks the registry for each tag's digest (`docker buildx imagetools inspect`) and writes the
lock again with it (atomically). `check` refuses a Dockerfile that names a base by tag (a FROM,
or an ARG default, without a digest).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
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


def build(lock: Path, images: list[str], tag: str) -> None:
    """Build `images` (all when empty) on their pinned bases; nothing is built if any is not."""
    bases = [base for base in read_lock(lock) if not images or base.image in images]
    missing = set(images) - {base.image for base in bases}
    if missing:
        raise BaseImageError(f"{lock}: no base listed for {', '.join(sorted(missing))}")
    problems = unpinned(lock, bases)
    for base in bases:
        problems += dockerfile_problems(dockerfile_of(base.image))
    if problems:
        raise BaseImageError("\n".join(problems))
    for base in bases:
        command = [
            "docker",
            "build",
            "--build-arg",
            f"BASE={base.reference}",
            "-f",
            str(dockerfile_of(base.image)),
            "-t",
            f"vision-pipelines-{base.image}:{tag}",
            str(ROOT),
        ]
        print("running:", subprocess.list2cmdline(command), flush=True)
        if subprocess.run(command).returncode != 0:
            raise BaseImageError(f"docker build of image {base.image!r} failed (above)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lock", type=Path, default=LOCK, help="default: %(default)s")
    commands = parser.add_subparsers(dest="command", required=True)
    build_command = commands.add_parser("build", help="build the images on their pinned bases")
    build_command.add_argument("images", nargs="*", help="default: every image in the lock")
    build_command.add_argument("--tag", default="latest", help="default: %(default)s")
    commands.add_parser("pin", help="write each tag's current digest into the lock")
    commands.add_parser("check", help="refuse Dockerfiles that name a base by tag only")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build(args.lock, args.images, args.tag)
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
