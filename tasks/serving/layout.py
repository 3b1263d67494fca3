"""The model files a server loads: a model archive fetched from where it lies, and a champion's
SavedModel in the layout TensorFlow Serving and KServe's TensorFlow runtime load
(`<model base path>/<version>/saved_model.pb`, the highest version served)."""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from tasks.artifact import ARCHIVE_COMPRESSLEVEL, MANIFEST, extract_artifact
from tasks.errors import InputError
from tasks.staging import check_exists, remove_prefix, upload_folder

SAVED_MODEL_PB = "saved_model.pb"
KEEP_VERSIONS = 2
"""Versions kept under a model base path: the one served and the one before (an older champion
comes back by rollback, as a new version)."""


def fetch_model(uri: str, folder: Path) -> Path:
    """A local model.tar.gz: the path itself, a copy of an object-storage URI, the one in a
    folder, or a folder holding an extracted archive (as the managed hosting mounts
    /opt/ml/model) packed again, so that its checksums and signature are checked as ever."""
    fs, path = check_exists(uri)
    if not isinstance(fs, LocalFileSystem):
        local = folder / "model.tar.gz"
        fs.get_file(path, str(local))
        return local
    local = Path(path)
    if not local.is_dir():
        return local
    if (local / "model.tar.gz").is_file():
        return local / "model.tar.gz"
    if not (local / MANIFEST).is_file():
        raise InputError(f"{uri}: a folder without model.tar.gz or an extracted model ({MANIFEST})")
    packed = folder / "model.tar.gz"
    with tarfile.open(packed, "w:gz", compresslevel=ARCHIVE_COMPRESSLEVEL) as tar:
        for member in sorted(local.iterdir()):
            tar.add(member, arcname=member.name)
    return packed


def serving_base(models_uri: str, pipeline: str) -> str:
    """A pipeline's model base path: `<models_uri>/serving/<pipeline>` (TF Serving's
    `--model_base_path`, with `--model_name=<pipeline>`; a KServe storageUri)."""
    return f"{models_uri.rstrip('/')}/serving/{pipeline}"


def versions(base_uri: str) -> list[int]:
    """The numbered versions under a model base path, oldest first."""
    fs, path = fsspec.core.url_to_fs(base_uri)
    if not fs.isdir(path):
        return []
    names = (p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))
    return sorted(int(n) for n in names if n.isdigit())


def export_version(model_uri: str, base_uri: str, version: int) -> str:
    """The SavedModel of the archive at `model_uri` (its checksums and signature checked) as
    `<base_uri>/<version>/`, saved_model.pb written last so a polling server never loads a
    half-written version; a rerun rewrites it. Versions older than the newest KEEP_VERSIONS
    are removed. Returns the version's URI."""
    target = f"{base_uri.rstrip('/')}/{version}"
    with tempfile.TemporaryDirectory() as tmp:
        archive = fetch_model(model_uri, Path(tmp))
        extracted = extract_artifact(archive, Path(tmp) / "model")
        remove_prefix(target)
        upload_folder(extracted.saved_model_dir, target, last=SAVED_MODEL_PB)
    for old in versions(base_uri)[:-KEEP_VERSIONS]:
        remove_prefix(f"{base_uri.rstrip('/')}/{old}")
    return target
