"""model.tar.gz: manifest.json, saved_model/ (serving) and model.keras (incremental training)."""

from __future__ import annotations

import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from tasks.errors import InputError

MANIFEST = "manifest.json"
SAVED_MODEL = "saved_model"
KERAS_MODEL = "model.keras"


class ArtifactError(InputError):
    """A model.tar.gz that is missing, unreadable or not one of ours."""


def write_artifact(tar_path: Path, manifest: dict, saved_model_dir: Path, keras_path: Path) -> None:
    """Write the tarball under a temporary name and rename it into place."""
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tar_path.with_name(f".{tar_path.name}.tmp-{os.getpid()}")
    manifest_path = saved_model_dir.parent / MANIFEST
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    with tarfile.open(tmp, "w:gz") as tar:
        tar.add(manifest_path, arcname=MANIFEST)
        tar.add(saved_model_dir, arcname=SAVED_MODEL)
        tar.add(keras_path, arcname=KERAS_MODEL)
    tmp.replace(tar_path)


@dataclass(frozen=True)
class ExtractedModel:
    manifest: dict
    saved_model_dir: Path
    keras_path: Path


def extract_artifact(tar_path: Path, dest: Path) -> ExtractedModel:
    """Unpack a model.tar.gz into `dest` (members confined to it) and read its manifest."""
    if not tar_path.is_file():
        raise ArtifactError(f"{tar_path}: model file not found")
    try:
        with tarfile.open(tar_path, "r:*") as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as e:
        raise ArtifactError(f"{tar_path}: not a readable model.tar.gz ({e})") from e
    manifest_path = dest / MANIFEST
    if not manifest_path.is_file() or not (dest / SAVED_MODEL).is_dir():
        raise ArtifactError(
            f"{tar_path}: expected {MANIFEST} and {SAVED_MODEL}/ inside; is this a model made by "
            "vision-pipelines?"
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    return ExtractedModel(manifest, dest / SAVED_MODEL, dest / KERAS_MODEL)
