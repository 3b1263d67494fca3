"""Pipe input mode: a training channel read where it lies (s3://, file://, a path) instead of
being copied to the ml-root first.

`inputdataconfig.json` marks such a channel `"TrainingInputMode": "Pipe"` and names its
location in `"Uri"` (our addition: the managed service streams through FIFOs instead). Reads are
ranged and sequential with read-ahead (fsspec's `background` cache: the next range is fetched
while one is read), so nothing of the dataset lands on the pod's disk and training starts
without waiting for a copy.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

from tasks.errors import InputError
from tasks.settings import setting

FILE, PIPE = "File", "Pipe"
INPUT_MODES = (FILE, PIPE)
MODE_KEY, URI_KEY = "TrainingInputMode", "Uri"
READ_AHEAD_BYTES = setting("VISION_PIPELINES_READ_AHEAD_BYTES")
"""Bytes fetched per ranged read of a streamed object; the next range is fetched in the
background while this one is read (two in memory)."""

Location = Path | str
"""A staged channel's local path, or a streamed channel's URI."""


def input_mode(config: dict) -> str:
    """A channel's input mode (its inputdataconfig entry): File unless it says Pipe."""
    mode = str(config.get(MODE_KEY, FILE))
    if mode not in INPUT_MODES:
        raise InputError(f"TrainingInputMode {mode!r}; allowed: {' or '.join(INPUT_MODES)}")
    return mode


def pipe_uri(config: dict) -> str | None:
    """The location of a channel read in Pipe mode, else None."""
    if input_mode(config) != PIPE:
        return None
    uri = str(config.get(URI_KEY) or "")
    if not uri:
        raise InputError(f"a {PIPE} channel needs its location in {URI_KEY!r}")
    return uri


def local_path(location: Location) -> Path | None:
    """The local path of `location` (a path or a file:// URI), None for an object store's."""
    if isinstance(location, Path):
        return location
    scheme, sep, rest = location.partition("://")
    if not sep:
        return Path(location)
    return Path(rest) if scheme in ("file", "local") else None


def _object_store(location: str):
    # Imported only for object storage: the data tools run where fsspec is not installed.
    import fsspec

    return fsspec.core.url_to_fs(location)


def open_input(location: Location, *, block_size: int = READ_AHEAD_BYTES) -> BinaryIO:
    """A binary reader of a local file or an object, the latter with ranged read-ahead."""
    path = local_path(location)
    if path is not None:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    fs, key = _object_store(location)
    # Buffered as a local file is: fsspec's files lack readline's size limit.
    return io.BufferedReader(fs.open(key, "rb", block_size=block_size, cache_type="background"))


def files_under(location: Location) -> list[Location]:
    """The files under a folder (or the file itself), sorted; URIs keep their scheme."""
    path = local_path(location)
    if path is not None:
        if path.is_file():
            return [path]
        return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
    fs, key = _object_store(location)
    protocol = location.split("://", 1)[0]
    return [f"{protocol}://{k}" for k in sorted(fs.find(key))]


def files_in(location: Location) -> list[Location] | None:
    """The files directly in a folder, sorted; None when there is no such folder."""
    path = local_path(location)
    if path is not None:
        return sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else None
    fs, key = _object_store(location)
    if not fs.isdir(key):
        return None
    protocol = location.split("://", 1)[0]
    entries = fs.ls(key, detail=True)
    return sorted(f"{protocol}://{e['name']}" for e in entries if e["type"] == "file")


def is_file(location: Location) -> bool:
    """Whether `location` is one file (or object)."""
    path = local_path(location)
    if path is not None:
        return path.is_file()
    fs, key = _object_store(location)
    return fs.isfile(key)


def name_of(location: Location) -> str:
    """The file name at the end of a path or a URI."""
    return location.name if isinstance(location, Path) else location.rstrip("/").rsplit("/", 1)[-1]


def parent_of(location: Location) -> Location:
    """The folder holding a file (a path, or a URI without its last part)."""
    return location.parent if isinstance(location, Path) else location.rsplit("/", 1)[0]
