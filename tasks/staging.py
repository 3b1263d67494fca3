"""Channels in, outputs out: object storage (s3://, file://, plain paths) <-> the local ml-root."""

from __future__ import annotations

import shutil
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from tasks.atomic import temporary_name
from tasks.errors import InputError


def _fs(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    return fsspec.core.url_to_fs(uri)


def stage_in(uri: str, dest: Path) -> Path:
    """Make `uri` (a file or a folder) available at `dest`: a link for local data, else a copy."""
    fs, path = _fs(uri)
    if not fs.exists(path):
        raise InputError(f"channel data {uri} does not exist")
    dest.parent.mkdir(parents=True, exist_ok=True)
    clear(dest)
    if isinstance(fs, LocalFileSystem):
        source = Path(path)
        if source.is_dir():
            dest.symlink_to(source, target_is_directory=True)
        else:
            dest.mkdir(exist_ok=True)
            (dest / source.name).symlink_to(source)
        return dest
    if fs.isdir(path):
        fs.get(path.rstrip("/") + "/", str(dest), recursive=True)
    else:
        dest.mkdir(exist_ok=True)
        fs.get_file(path, str(dest / Path(path).name))
    return dest


def clear(path: Path) -> None:
    """Remove what an earlier attempt left at `path` (a link, a file or a folder)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def upload(local: Path, uri: str) -> str:
    """Copy one file to `uri` under a temporary name, then move it into place."""
    fs, path = _fs(uri)
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    tmp = f"{parent}/{temporary_name(path.rsplit('/', 1)[1])}"
    fs.put_file(str(local), tmp)
    fs.mv(tmp, path)
    return uri


def upload_folder(local: Path, uri: str) -> list[str]:
    """Upload every file under `local` to the same relative place under `uri`."""
    base = uri.rstrip("/")
    return [
        upload(p, f"{base}/{p.relative_to(local).as_posix()}")
        for p in sorted(local.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    ]


def remove(uri: str) -> None:
    """Delete the file at `uri` if it exists (a stale result of an earlier attempt)."""
    fs, path = _fs(uri)
    if fs.exists(path):
        fs.rm_file(path)


def read_file(path: str) -> bytes:
    """A local file or an s3:// object."""
    if path.startswith("s3://"):
        with fsspec.open(path, "rb") as f:
            return f.read()
    return Path(path).read_bytes()
