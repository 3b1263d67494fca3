"""Batch transform in shards: list the input once, split it, join the shards' predictions.

The input is listed on the Airflow side without downloading an image (an object-storage listing
for a folder; the lines of a `.lst` or an augmented manifest). The listing is split into at most
MAX_SHARDS contiguous shards, each written under the run as an `.inputs` file (JSON Lines,
`{"name": ..., "uri": ...}`: the name the unsharded transform would print as `source-ref`, and
where the image is), which the shard's transform reads instead of the whole input. The join
concatenates the shards' `predictions.jsonl` in shard order (= the input's order) and copies the
per-input outputs (segmentation masks) beside it, so the result is what one transform of the
whole input writes.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from tasks.contract import PREDICTIONS
from tasks.data.augmented_manifest import MANIFEST_SUFFIXES, check_manifest, manifest_paths
from tasks.data.lst import IMAGE_EXTENSIONS
from tasks.data.lst_validation import validate_lst
from tasks.errors import InputError
from tasks.staging import remove_prefix, upload
from tasks.uris import check_uri

MAX_SHARDS = 256
"""The most shards (mapped tasks) one transform makes: Airflow's max_map_length is 1024 and a
large map slows the scheduler; more inputs make larger shards, never more tasks."""
INPUTS_SUFFIX = ".inputs"
SHARDS_FOLDER = "shards"


@dataclass(frozen=True)
class Input:
    name: str
    """As the transform names it in `source-ref`."""
    uri: str
    """Where the image is: s3://... or file:///..."""


def _fs(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    return fsspec.core.url_to_fs(uri)


def _uri(fs: fsspec.AbstractFileSystem, path: str, like: str) -> str:
    if isinstance(fs, LocalFileSystem):
        return f"file://{path}"
    return f"{like.partition('://')[0]}://{path}"


def _local_copy(fs: fsspec.AbstractFileSystem, path: str, scratch: Path) -> Path:
    """A listing file where the readers of `.lst` and manifests can open it (they read local
    files; a listing in object storage is small text)."""
    if isinstance(fs, LocalFileSystem):
        return Path(path)
    local = scratch / path.rsplit("/", 1)[-1]
    fs.get_file(path, str(local))
    return local


def list_inputs(data_uri: str) -> list[Input]:
    """Every input of a transform of `data_uri`, in the order the transform predicts them: a
    folder's .jpg/.jpeg/.png files by relative path, or a `.lst` / manifest (the file, or the one
    such file in the folder) in its own order. Nothing but listings is read."""
    check_uri(data_uri, "transform input")
    fs, path = _fs(data_uri)
    if not fs.exists(path):
        raise InputError(f"transform input {data_uri} does not exist")
    path = path.rstrip("/")
    if fs.isdir(path):
        files = fs.find(path)
        lists = [f for f in files if f.rsplit("/", 1)[-1].endswith((".lst", *MANIFEST_SUFFIXES))]
        top = [f for f in lists if f.rsplit("/", 1)[0] == path]
        if len(top) == 1:
            return _listed(fs, top[0], data_uri)
        # `find` lists files only: no per-object request here.
        images = sorted(
            (f[len(path) + 1 :], f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not images:
            raise InputError(
                f"{data_uri}: no {', '.join(IMAGE_EXTENSIONS)} images under this folder"
            )
        return [Input(name, _uri(fs, full, data_uri)) for name, full in images]
    return _listed(fs, path, data_uri)


def _listed(fs: fsspec.AbstractFileSystem, path: str, like: str) -> list[Input]:
    """The inputs of a `.lst` or an augmented manifest at `path`."""
    folder_uri = _uri(fs, path.rsplit("/", 1)[0], like)
    with tempfile.TemporaryDirectory(prefix="transform-listing-") as scratch:
        local = _local_copy(fs, path, Path(scratch))
        if local.suffix == ".lst":
            entries = validate_lst(local, image_root=None)
            return [Input(e.path, f"{folder_uri}/{e.path}") for e in entries]
        if local.suffix in MANIFEST_SUFFIXES:
            records = check_manifest(local, attribute_names=("source-ref",))
            if isinstance(fs, LocalFileSystem):
                uris = [p if "://" in p else f"file://{p}" for p in manifest_paths(local, records)]
            else:
                uris = [
                    r.ref if r.ref.startswith("s3://") else f"{folder_uri}/{r.ref}" for r in records
                ]
            return [Input(r.ref, u) for r, u in zip(records, uris, strict=True)]
    raise InputError(
        f"transform input {like}: expected a folder of images, a .lst or a .manifest/.jsonl file"
    )


def shard_ranges(
    total: int, shards: int | None = None, *, shard_size: int | None = None, cap: int = MAX_SHARDS
) -> list[range]:
    """Contiguous, nearly equal ranges covering `total` inputs: `shards` of them, or as many as
    `shard_size` inputs each need; never more than `cap` (or than there are inputs)."""
    if shards is None and shard_size is None:
        shards = 1
    if shards is not None and shards < 1:
        raise InputError(f"transform_shards got {shards}; allowed: 1 to {cap}")
    if shard_size is not None and shard_size < 1:
        raise InputError(f"transform shard size got {shard_size}; allowed: a positive number")
    wanted = shards if shards is not None else math.ceil(total / shard_size)
    count = max(1, min(wanted, cap, total))
    bounds = [round(i * total / count) for i in range(count + 1)]
    return [range(bounds[i], bounds[i + 1]) for i in range(count)]


def shard_uri(output_uri: str, index: int) -> str:
    """Where shard `index` of a transform writing to `output_uri` puts its outputs."""
    return f"{output_uri.rstrip('/')}/{SHARDS_FOLDER}/{index:05d}"


def write_shards(inputs: Sequence[Input], ranges: Sequence[range], output_uri: str) -> list[str]:
    """A fresh `<output_uri>` (an earlier attempt's shards and predictions removed) holding one
    `.inputs` listing per range; their URIs, in shard order."""
    remove_prefix(output_uri.rstrip("/"))
    listings = []
    with tempfile.TemporaryDirectory(prefix="transform-shards-") as scratch:
        for index, shard in enumerate(ranges):
            local = Path(scratch) / f"{index:05d}{INPUTS_SUFFIX}"
            with local.open("w", encoding="utf-8") as f:
                for item in (inputs[i] for i in shard):
                    f.write(json.dumps({"name": item.name, "uri": item.uri}) + "\n")
            listings.append(upload(local, f"{shard_uri(output_uri, index)}{INPUTS_SUFFIX}"))
    return listings


def split(
    data_uri: str, output_uri: str, shards: int | None = None, *, shard_size: int | None = None
) -> list[str]:
    """List `data_uri` once and write its shards' listings under `output_uri`; their URIs."""
    inputs = list_inputs(data_uri)
    ranges = shard_ranges(len(inputs), shards, shard_size=shard_size)
    listings = write_shards(inputs, ranges, output_uri)
    print(
        f"{len(inputs)} inputs of {data_uri} in {len(ranges)} shard(s) of "
        f"{min(map(len, ranges))}-{max(map(len, ranges))}",
        flush=True,
    )
    return listings


def read_inputs(path: Path) -> tuple[list[str], list[str]]:
    """(names, readable locations) of an `.inputs` listing; every location checked as a
    channel URI would be (the deployment's allowed prefixes)."""
    names, locations = [], []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                entry = json.loads(line)
                name, uri = entry["name"], entry["uri"]
                if not (isinstance(name, str) and isinstance(uri, str)):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                raise InputError(
                    f"{path}:{number}: expected a JSON object with string fields name and uri, "
                    f"got {line.strip()[:120]!r}"
                ) from None
            check_uri(uri, f"{path}:{number}: uri")
            names.append(name)
            locations.append(uri.removeprefix("file://"))
    if not names:
        raise InputError(f"{path}: no inputs listed")
    return names, locations


def join(output_uri: str, shard_count: int) -> int:
    """`<output_uri>/predictions.jsonl` from the shards' in shard order, and each shard's other
    outputs (masks) copied beside it; the number of lines."""
    base = output_uri.rstrip("/")
    fs, base_path = _fs(base)
    lines = 0
    with tempfile.TemporaryDirectory(prefix="transform-join-") as scratch:
        joined = Path(scratch) / PREDICTIONS
        with joined.open("wb") as out:
            for index in range(shard_count):
                shard = f"{base_path}/{SHARDS_FOLDER}/{index:05d}"
                files = fs.find(shard)  # files only
                if f"{shard}/{PREDICTIONS}" not in files:
                    raise InputError(
                        f"shard {index} wrote no {PREDICTIONS} ({shard_uri(base, index)})"
                    )
                with fs.open(f"{shard}/{PREDICTIONS}", "rb") as f:
                    for line in f:
                        out.write(line if line.endswith(b"\n") else line + b"\n")
                        lines += 1
                _copy_outputs(fs, shard, files, base_path)
        upload(joined, f"{base}/{PREDICTIONS}")
    return lines


def _copy_outputs(fs: fsspec.AbstractFileSystem, shard: str, files: list[str], base: str) -> None:
    """A shard's per-input outputs (everything but its predictions and step records) to the
    same relative place under `base`."""
    skip = {PREDICTIONS, "summary.json", "failure"}
    for path in files:
        relative = path[len(shard) + 1 :]
        if relative in skip or relative.startswith("."):
            continue
        target = f"{base}/{relative}"
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        fs.copy(path, target)
