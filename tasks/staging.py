"""Channels in, outputs out: object storage (s3://, file://, plain paths) <-> the local ml-root."""

from __future__ import annotations

import shutil
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from tasks.atomic import atomic_path
from tasks.errors import InputError


def _fs(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    return fsspec.core.url_to_fs(uri)


def check_exists(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The file system and path of a channel's data; InputError when there is none."""
    fs, path = _fs(uri)
    if not fs.exists(path):
        raise InputError(f"channel data {uri} does not exist")
    return fs, path


def stage_in(uri: str, dest: Path) -> Path:
    """Make `uri` (a file or a folder) available at `dest`: a link for local data, else a copy."""
    fs, path = check_exists(uri)
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
    """Copy one file to `uri` so that readers see all of it or nothing: an object store's PUT
    is that already (a rename there would be a second copy); a file system gets a temporary
    name, flushed to disk, renamed into place (the folder flushed too) and removed if the copy
    fails (tasks.atomic)."""
    fs, path = _fs(uri)
    if not isinstance(fs, LocalFileSystem):
        fs.put_file(str(local), path)
        return uri
    with atomic_path(Path(path)) as tmp:
        shutil.copyfile(local, tmp)
    return uri


def upload_folder(local: Path, uri: str, *, last: str | None = None) -> list[str]:
    """Upload every file under `local` to the same relative place under `uri`; the file
    named `last` (a completion marker) after all the others."""
    base = uri.rstrip("/")
    files = [p for p in sorted(local.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    files.sort(key=lambda p: p.relative_to(local).as_posix() == last)
    return [upload(p, f"{base}/{p.relative_to(local).as_posix()}") for p in files]


def remove_prefix(uri: str) -> None:
    """Delete everything under `uri` (what an earlier attempt of the step published)."""
    fs, path = _fs(uri)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def read_file(path: str) -> bytes:
    """A local file or an s3:// object."""
    if path.startswith("s3://"):
        with fsspec.open(path, "rb") as f:
            return f.read()
    return Path(path).read_bytes()
