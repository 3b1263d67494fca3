"""Which storage locations a run may read and write, as the deployment allows them.

Whoever can trigger a DAG chooses its dataset, output and model URIs; the workers and pods hold
the storage rights. So every URI is checked, on the Airflow side before a step starts and in the
step itself, by this one function: an absolute path or a scheme we support, no Airflow
connection id borrowed through `s3://<conn_id>@bucket`, and, where the deployment lists them,
under an allowed prefix.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from pathlib import Path

from tasks.errors import InputError
from tasks.settings import setting_text

SCHEMES = ("file", "s3", "memory")  # memory: fsspec's in-process store (nothing leaves the worker)
ALLOWED_PREFIXES = "VISION_PIPELINES_ALLOWED_URIS"
"""Comma-separated URI prefixes (`file:///srv/ml/,s3://ml-data/`); unset: any file:// or s3://."""


def _normalized(uri: str) -> str:
    """`uri` with a scheme, `.` and `..` resolved and, for local paths, symbolic links followed
    (as a reader would follow them), so a prefix check cannot be walked or linked out of."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        scheme, rest = "file", os.path.abspath(uri)
    if scheme == "file":
        return "file://" + os.path.realpath(rest or "/")
    bucket, _, key = rest.partition("/")
    key = posixpath.normpath("/" + key).lstrip("/")
    return f"{scheme}://{bucket}/{key}".rstrip("/")


def allowed_prefixes() -> list[str]:
    listed = setting_text(ALLOWED_PREFIXES) or ""
    return [_normalized(p.strip()) for p in listed.split(",") if p.strip()]


def check_uri(uri: str, what: str, *, prefixes: list[str] | None = None) -> str:
    """`uri` if runs may use it; else one sentence naming `what` (e.g. "dataset_uri"), the URI
    and what is allowed. `prefixes`: allowed_prefixes(), when the caller checks many URIs."""
    scheme, sep, rest = uri.partition("://")
    if (not sep or scheme == "file") and not (rest if sep else uri).startswith("/"):
        # A relative local path: the Airflow side and the step would resolve it from different
        # folders.
        raise InputError(
            f"{what} {uri!r} is a relative path; write an absolute one (/srv/ml/... or "
            "file:///srv/ml/...) or s3://bucket/..."
        )
    if sep and scheme not in SCHEMES:
        raise InputError(
            f"{what} {uri!r}: scheme {scheme}:// is not supported; use "
            + " or ".join(f"{s}://" for s in SCHEMES)
        )
    if scheme == "s3" and {".", ".."} & set(rest.partition("/")[2].split("/")):
        raise InputError(
            f"{what} {uri!r}: an object key with '.' or '..' segments (object storage takes them "
            "literally, so the key is not the place it looks like); write the plain key"
        )
    if scheme == "s3" and "@" in rest.partition("/")[0]:
        raise InputError(
            f"{what} {uri!r}: Airflow connection ids in URIs (s3://<conn_id>@bucket) are not "
            "used; write s3://bucket/... (the deployment's storage credentials apply)"
        )
    prefixes = allowed_prefixes() if prefixes is None else prefixes
    normalized = _normalized(uri)
    if prefixes and not any(
        normalized == p or normalized.startswith(p.rstrip("/") + "/") for p in prefixes
    ):
        raise InputError(
            f"{what} {uri!r} is outside the locations this deployment allows: "
            f"{', '.join(prefixes)} ({ALLOWED_PREFIXES})"
        )
    return uri


def walk_files(root: Path, what: str) -> Iterator[str]:
    """Every file under the local folder `root`, relative, links followed as im2rec follows
    them; where the deployment lists allowed prefixes, each file's real location must lie under
    one (a link in an allowed dataset is no way out of it)."""
    prefixes = allowed_prefixes()
    for folder, _, names in os.walk(root, followlinks=True):
        for name in names:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, root)
            if prefixes:
                check_uri(path, f"{what}: {relative}", prefixes=prefixes)
            yield Path(relative).as_posix()
