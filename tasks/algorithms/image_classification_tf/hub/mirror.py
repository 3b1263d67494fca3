"""Where a registry model's files are, without the internet: a hub cache or a mirror.

- `TFHUB_CACHE_DIR`: tensorflow_hub's own cache layout, `<dir>/<sha1 of the handle>/` holding
  the SavedModel (what `hub.KerasLayer(handle)` resolves offline).
- `VISION_PIPELINES_TFHUB_MIRROR`: a prefix (`file://...` or `s3://...`) holding
  `<model_id>/<kind>.tar.gz`, each a SavedModel as tfhub.dev serves it compressed (written by
  `python -m tasks.hub mirror`).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import fsspec

from tasks.algorithms.image_classification_tf.hub.registry import KINDS, Kind, get_model, registry
from tasks.algorithms.image_classification_tf.hub.trust import (
    TrustedModule,
    from_registry,
    from_user,
    module_digest,
)
from tasks.artifact import safe_extract
from tasks.errors import InputError
from tasks.settings import setting_text
from tasks.staging import upload

CACHE_ENV = "TFHUB_CACHE_DIR"
MIRROR_ENV = "VISION_PIPELINES_TFHUB_MIRROR"
SAVED_MODEL_PB = "saved_model.pb"


class HubModelNotFoundError(InputError):
    """A registry model that neither the hub cache nor the mirror holds."""


def cache_folder(handle: str) -> Path | None:
    """The SavedModel of `handle` in `$TFHUB_CACHE_DIR`, if it is there."""
    root = os.environ.get(CACHE_ENV)
    if not root:
        return None
    folder = Path(root) / hashlib.sha1(handle.encode("utf-8")).hexdigest()
    return folder if (folder / SAVED_MODEL_PB).is_file() else None


def mirror_prefix() -> str | None:
    return (setting_text(MIRROR_ENV) or "").rstrip("/") or None


def mirror_uri(model_id: str, kind: Kind, prefix: str | None = None) -> str:
    prefix = prefix or mirror_prefix()
    if not prefix:
        raise HubModelNotFoundError(f"no mirror configured ({MIRROR_ENV})")
    return f"{prefix}/{model_id}/{kind}.tar.gz"


def _exists(uri: str) -> bool:
    fs, path = fsspec.core.url_to_fs(uri)
    return fs.exists(path)


def available(kind: Kind = "feature_vector") -> list[str]:
    """The registry ids whose `kind` module the cache or the mirror holds."""
    found = {m.model_id for m in registry().values() if cache_folder(m.handle(kind))}
    prefix = mirror_prefix()
    if prefix:
        fs, path = fsspec.core.url_to_fs(prefix)
        if fs.exists(path):
            found |= {
                p.rstrip("/").rsplit("/", 2)[-2] for p in fs.glob(f"{path}/*/{kind}.tar.gz")
            } & set(registry())
    return sorted(found)


def locate(model_id: str, kind: Kind = "feature_vector") -> str:
    """A local SavedModel folder (hub cache) or the mirror URI of a `.tar.gz` holding `kind` of
    `model_id`; else one sentence saying where it looked and what is there."""
    model = get_model(model_id)
    folder = cache_folder(model.handle(kind))
    if folder:
        return str(folder)
    prefix = mirror_prefix()
    if prefix and _exists(uri := mirror_uri(model_id, kind, prefix)):
        return uri
    looked = [
        f"{CACHE_ENV}={os.environ[CACHE_ENV]}"
        if os.environ.get(CACHE_ENV)
        else f"{CACHE_ENV} unset",
        f"{MIRROR_ENV}={prefix}" if prefix else f"{MIRROR_ENV} unset",
    ]
    there = available(kind)
    raise HubModelNotFoundError(
        f"the {kind.replace('_', ' ')} model of {model_id!r} ({model.handle(kind)}) is not "
        f"available offline ({'; '.join(looked)}); available: {', '.join(there) or 'none'}; "
        "add it with python -m tasks.hub mirror, or give it as the 'model' channel"
    )


def find_saved_model(folder: Path, source: str) -> Path:
    """The folder under `folder` that holds saved_model.pb (itself, or its one subfolder)."""
    if (folder / SAVED_MODEL_PB).is_file():
        return folder
    found = sorted(folder.rglob(SAVED_MODEL_PB))
    if len(found) != 1:
        raise InputError(
            f"{source}: not a TF2 SavedModel ({'no' if not found else len(found)} "
            f"{SAVED_MODEL_PB} inside); expected a hub model folder or a .tar.gz of one"
        )
    return found[0].parent


def private_copy(folder: Path, dest: Path, source: str) -> Path:
    """The SavedModel under `folder` copied into `dest`, a new folder only this process may
    write: checks and the loader then read the same bytes, whatever happens to `folder` (a
    model channel or a cache anyone else can write). Regular files and folders only."""
    found = find_saved_model(folder, source)
    dest.mkdir(parents=True, mode=0o700)
    for path in sorted(found.rglob("*")):
        target = dest / path.relative_to(found)
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise InputError(
                f"{source}: {path.relative_to(found)} is a link or special file; a SavedModel "
                "folder holds regular files only"
            )
        if path.is_dir():
            target.mkdir(mode=0o700, exist_ok=True)
        else:
            shutil.copyfile(path, target, follow_symlinks=False)
    return dest


def unpack(tar_path: Path, dest: Path, source: str | None = None) -> Path:
    """Extract a hub model `.tar.gz` (members checked) and return its SavedModel folder."""
    safe_extract(tar_path, dest)
    return find_saved_model(dest, source or str(tar_path))


def _fetch_folder(model_id: str, kind: Kind, dest: Path) -> tuple[Path, str]:
    found = locate(model_id, kind)
    if "://" not in found or found.startswith("file://"):
        path = Path(found.removeprefix("file://"))
        if path.is_dir():
            return private_copy(path, dest / kind, found), found
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / f"{kind}.tar.gz"
    with fsspec.open(found, "rb") as src, open(archive, "wb") as out:
        while chunk := src.read(1 << 20):
            out.write(chunk)
    folder = unpack(archive, dest / kind, found)
    archive.unlink()
    return folder, found


def fetch_module(model_id: str, kind: Kind, dest: Path) -> TrustedModule:
    """`kind` of `model_id` from the cache, or unpacked from the mirror into `dest`; checked
    against the registry's pin."""
    folder, found = _fetch_folder(model_id, kind, dest)
    return from_registry(folder, model_id, kind, found)


def fetch(model_id: str, kind: Kind, dest: Path) -> Path:
    """A local SavedModel folder of `kind` of `model_id` (see fetch_module)."""
    return fetch_module(model_id, kind, dest).folder


def stage_user_module(
    path: Path, work: Path, source: str, *, trust: Callable[[Path, str], TrustedModule] = from_user
) -> TrustedModule:
    """A hub module given as a SavedModel folder or a .tar.gz of one, unpacked into `work` when
    packed, copied when not (the checks and the loader read only that private copy); `trust`
    decides (a run's module: refused unless the deployment pinned it)."""
    if path.is_dir():
        folder = private_copy(path, work / "module", source)
    else:
        folder = unpack(path, work, source)
    return trust(folder, source)


def pack(folder: Path, tar_path: Path) -> None:
    """A SavedModel folder as a `.tar.gz` with its files at the top (tfhub.dev's layout)."""
    with tarfile.open(tar_path, "w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=path.relative_to(folder).as_posix())


def mirror(
    model_id: str, source: Path, *, kind: Kind = "feature_vector", to: str | None = None
) -> str:
    """Copy a downloaded hub model (a SavedModel folder or its `.tar.gz`) into the mirror as
    `<model_id>/<kind>.tar.gz`; return its URI."""
    get_model(model_id)
    if kind not in KINDS:
        raise InputError(f"kind {kind!r}: allowed: {', '.join(KINDS)}")
    uri = mirror_uri(model_id, kind, (to or "").rstrip("/") or None)
    source = Path(source)
    with tempfile.TemporaryDirectory() as tmp:
        if source.is_dir():
            folder = find_saved_model(source, str(source))
        elif source.is_file():
            folder = unpack(source, Path(tmp) / "unpacked")
        else:
            raise InputError(f"{source}: no such file or folder")
        archive = Path(tmp) / "model.tar.gz"
        pack(folder, archive)
        upload(archive, uri)
    return uri


def digest_of(source: Path) -> str:
    """The pinning digest of a SavedModel folder or a .tar.gz of one (trust.module_digest)."""
    if source.is_dir():
        return module_digest(find_saved_model(source, str(source)))
    if not source.is_file():
        raise InputError(f"{source}: no such file or folder")
    with tempfile.TemporaryDirectory() as tmp:
        return module_digest(unpack(source, Path(tmp)))


def describe_registry() -> str:
    """The registry as a table: id, input size, whether it is available offline, name."""
    offline = set(available())
    out = io.StringIO()
    for m in sorted(registry().values(), key=lambda m: m.model_id):
        mark = "offline" if m.model_id in offline else "-"
        out.write(f"{m.model_id}\t{m.input_size}\t{mark}\t{m.name}\n")
    return out.getvalue()
