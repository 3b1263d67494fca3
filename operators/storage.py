"""Object storage on the Airflow side (ObjectStoragePath, through the process' connection:
operators/connections.py): local paths to work on, atomic writes."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from airflow.sdk import ObjectStoragePath

from operators.connections import current_aws_conn_id
from tasks.atomic import temporary_name
from tasks.errors import InputError


def storage_path(uri: str) -> ObjectStoragePath:
    """`uri` as an ObjectStoragePath; in S3 through this process' connection."""
    if uri.startswith(("s3://", "s3a://")):
        return ObjectStoragePath(uri, conn_id=current_aws_conn_id())
    return ObjectStoragePath(uri)


def _is_local(path: ObjectStoragePath) -> bool:
    return path.protocol in ("file", "local", "")


def local_path(uri: str) -> Path | None:
    """The local path of a file:// URI (or plain path); None for object storage."""
    path = storage_path(uri)
    return Path(path.path) if _is_local(path) else None


@contextmanager
def local_copy(uri: str) -> Iterator[Path]:
    """A local path holding `uri` (file or folder): the path itself for file://, else a download."""
    path = storage_path(uri)
    if _is_local(path):
        yield Path(path.path)
        return
    with tempfile.TemporaryDirectory(prefix="stage-") as tmp:
        dest = Path(tmp) / (path.name or "data")
        if path.is_dir():
            path.fs.get(path.path.rstrip("/") + "/", str(dest), recursive=True)
        else:
            path.fs.get_file(path.path, str(dest))
        yield dest


def list_files(uri: str) -> list[str]:
    """Every file under `uri`, as paths relative to it: one listing, nothing downloaded."""
    root = storage_path(uri)
    if not root.is_dir():
        raise InputError(f"{uri}: not a folder (or it does not exist)")
    base = root.path.rstrip("/") + "/"
    return [p[len(base) :] for p in root.fs.find(root.path) if p.startswith(base)]


@contextmanager
def local_files(root_uri: str, rel_paths: Sequence[str]) -> Iterator[Path]:
    """A local folder holding `rel_paths` of `root_uri`: the folder itself for file://, else a
    concurrent download of only those files (not the whole root)."""
    root = storage_path(root_uri)
    if _is_local(root):
        yield Path(root.path)
        return
    base = root.path.rstrip("/")
    wanted = list(dict.fromkeys(rel_paths))
    with tempfile.TemporaryDirectory(prefix="stage-") as tmp:
        try:
            root.fs.get([f"{base}/{p}" for p in wanted], [str(Path(tmp, p)) for p in wanted])
        except FileNotFoundError as e:
            raise InputError(f"{root_uri}: a listed image does not exist ({e})") from e
        yield Path(tmp)


def upload(local: Path, uri: str) -> str:
    """Copy `local` to `uri` under a temporary name, then rename it into place."""
    target = storage_path(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / temporary_name(target.name)
    if _is_local(target):
        shutil.copyfile(local, tmp.path)
    else:
        tmp.fs.put_file(str(local), tmp.path)
    tmp.rename(target)
    return uri


def remove_prefix(uri: str) -> None:
    """Delete everything under `uri` (what an earlier attempt of a step published)."""
    path = storage_path(uri)
    if path.is_dir():
        path.rmdir(recursive=True)
    elif path.exists():
        path.unlink()


def write_text(uri: str, text: str) -> str:
    """Write `text` to `uri` atomically."""
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "file"
        local.write_text(text, encoding="utf-8")
        return upload(local, uri)


def read_text(uri: str) -> str:
    return storage_path(uri).read_text(encoding="utf-8")
