"""The champion pointer of a pipeline: `<models_uri>/<pipeline>/champion.json`.

It holds the current champion and every earlier promotion (the history). A promoted model is
copied under `<models_uri>/<pipeline>/models/<run key>/`, so the champion does not depend on a
run folder that a rerun clears or a retention policy deletes. Rollback promotes an earlier entry
again (recorded as a promotion of its own).

One writer at a time: every change is a compare-and-swap on what was read (an S3 conditional
write, If-Match / If-None-Match, on object storage; an exclusive lock file on a file system),
retried on a conflict, so no promotion or rollback is lost; a promotion whose gate compared
another champion than the current one fails with one sentence.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec

from tasks.errors import InputError
from tasks.staging import upload
from tasks.uris import check_uri

CHAMPION = "champion.json"
ATTEMPTS = 5
_MEMORY_LOCK = threading.Lock()


class PointerConflictError(InputError):
    """The champion changed under a promotion that was gated against another one."""


def pointer_uri(models_uri: str, pipeline: str) -> str:
    return f"{models_uri.rstrip('/')}/{pipeline}/{CHAMPION}"


REFERENCES = ("model_uri", "profile_uri")
"""The champion entry's fields that name what later steps read."""


def _parse(uri: str, raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        return {"champion": None, "history": []}
    try:
        pointer = json.loads(raw)
        if not isinstance(pointer, dict) or not isinstance(pointer.get("history"), list):
            raise ValueError("expected an object with a 'history' list")
    except ValueError as e:
        raise InputError(f"{uri}: not a champion pointer ({e})") from e
    champion = pointer.get("champion")
    if isinstance(champion, dict):  # what steps read by reference: allowed as a form's URI is
        for field in REFERENCES:
            if isinstance(champion.get(field), str) and champion[field]:
                check_uri(champion[field], f"{uri}: the champion's {field}")
    return pointer


def _read_raw(fs: Any, path: str) -> tuple[bytes | None, str | None]:
    """(content, version): the object's ETag on object storage, a digest of the content on a
    file system; (None, None) when there is no pointer yet."""
    if not fs.exists(path):
        return None, None
    if _is_object_store(fs):
        etag = fs.info(path).get("ETag")
        return fs.cat_file(path), etag
    raw = fs.cat_file(path)
    return raw, hashlib.sha256(raw).hexdigest()


def _is_object_store(fs: Any) -> bool:
    return "s3" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def read_pointer(models_uri: str, pipeline: str) -> dict[str, Any]:
    """{"champion": entry or None, "history": [entries, oldest first]}."""
    uri = pointer_uri(models_uri, pipeline)
    fs, path = fsspec.core.url_to_fs(uri)
    return _parse(uri, _read_raw(fs, path)[0])


@contextmanager
def _exclusive(fs: Any, path: str) -> Iterator[None]:
    """One writer at a time on a file system (a lock file beside the pointer) or in memory
    (object stores take conditional writes instead)."""
    if "memory" in str(fs.protocol):
        with _MEMORY_LOCK:
            yield
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _precondition_failed(error: BaseException | None) -> bool:
    """Whether s3fs's error is S3's 412 (it wraps botocore's ClientError in an OSError)."""
    while error is not None:
        code = getattr(error, "response", {}).get("Error", {}).get("Code")
        if code in ("PreconditionFailed", "412"):
            return True
        error = error.__cause__ or error.__context__
    return False


def _swap(fs: Any, path: str, data: bytes, version: str | None) -> bool:
    """Write `data` if the pointer is still at `version`; False when another writer was first."""
    if _is_object_store(fs):
        condition = {"IfMatch": version} if version else {"IfNoneMatch": "*"}
        try:
            fs.pipe_file(path, data, **condition)
        except OSError as e:
            if _precondition_failed(e):
                return False
            raise
        return True
    with _exclusive(fs, path):
        if _read_raw(fs, path)[1] != version:
            return False
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / CHAMPION
            local.write_bytes(data)
            upload(local, fs.unstrip_protocol(path))
    return True


def _update(
    models_uri: str,
    pipeline: str,
    change: Callable[[dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """Apply `change` (pointer -> the new entry; it may refuse) and append the entry, as one
    compare-and-swap, retried while other writers are first."""
    uri = pointer_uri(models_uri, pipeline)
    fs, path = fsspec.core.url_to_fs(uri)
    for _ in range(ATTEMPTS):
        raw, version = _read_raw(fs, path)
        pointer = _parse(uri, raw)
        entry = change(pointer)
        updated = {"champion": entry, "history": [*pointer["history"], entry]}
        if _swap(fs, path, (json.dumps(updated, indent=2) + "\n").encode(), version):
            return entry
    raise PointerConflictError(
        f"{uri}: {ATTEMPTS} other writers changed the champion pointer while this one tried; "
        "try again"
    )


def champion_model(models_uri: str, pipeline: str) -> str:
    """The champion's model URI, or "" when the pipeline has none yet."""
    champion = read_pointer(models_uri, pipeline)["champion"]
    return champion["model_uri"] if champion else ""


def data_fingerprint(uris: Sequence[str]) -> str:
    """SHA-256 over the files that define a run's data (its lists, its manifest)."""
    digest = hashlib.sha256()
    for uri in uris:
        fs, path = fsspec.core.url_to_fs(uri)
        if fs.exists(path):
            digest.update(uri.rsplit("/", 1)[-1].encode() + b"\0" + fs.cat_file(path))
    return "sha256:" + digest.hexdigest()


def _free_folder(base: str) -> str:
    """`base`, or `base.2`, `base.3`, ... when an earlier promotion of the same run key holds
    it: an archived champion is never overwritten (a rollback may still need it)."""
    fs, path = fsspec.core.url_to_fs(base)
    folder, n = path, 1
    while fs.exists(f"{folder}/model.tar.gz"):
        n += 1
        folder = f"{path}.{n}"
    return base if n == 1 else f"{base}.{n}"


def promote(
    models_uri: str,
    pipeline: str,
    *,
    model_uri: str,
    run_key: str,
    metrics: Mapping[str, Any],
    run_id: str,
    data_interval_end: str | None,
    fingerprint: str,
    gated: bool = False,
    gated_against: str | None = None,
    profile_uri: str | None = None,
) -> dict[str, Any]:
    """Copy the model (and the run's data profile, `profile_uri`) under the models prefix and
    make it the champion; return its entry.
    When `gated`, `gated_against` is the champion's model URI the gate compared with (None:
    there was none), and a champion changed since refuses the promotion."""
    folder = _free_folder(f"{models_uri.rstrip('/')}/{pipeline}/models/{run_key}")
    target = f"{folder}/model.tar.gz"
    kept_profile = None
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "model.tar.gz"
        fs, path = fsspec.core.url_to_fs(model_uri)
        if not fs.exists(path):
            raise InputError(f"model {model_uri} does not exist: nothing to promote")
        fs.get_file(path, str(local))
        upload(local, target)
        if profile_uri:  # the data it was trained on, for the next runs' drift checks
            fs, path = fsspec.core.url_to_fs(profile_uri)
            if fs.exists(path):
                name = profile_uri.rsplit("/", 1)[-1]
                fs.get_file(path, str(Path(tmp) / name))
                kept_profile = upload(Path(tmp) / name, f"{folder}/{name}")
    entry = {
        "model_uri": target,
        "profile_uri": kept_profile,
        "source_model_uri": model_uri,
        "metrics": dict(metrics),
        "run_id": run_id,
        "data_interval_end": data_interval_end,
        "data_fingerprint": fingerprint,
        "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "action": "promote",
    }

    def change(pointer: dict[str, Any]) -> dict[str, Any]:
        current = (pointer["champion"] or {}).get("model_uri")
        if gated and current != gated_against:
            raise PointerConflictError(
                f"{pointer_uri(models_uri, pipeline)}: the champion changed after the gate "
                f"compared this run's model with {gated_against or 'no champion'}; it is now "
                f"{current} (run {(pointer['champion'] or {}).get('run_id')}); run the pipeline "
                "again to compare with it"
            )
        return entry

    return _update(models_uri, pipeline, change)


def rollback(models_uri: str, pipeline: str, to_run_id: str | None = None) -> dict[str, Any]:
    """Make an earlier champion the champion again: the one of `to_run_id`, else the one
    before the current; return the new entry."""

    def change(pointer: dict[str, Any]) -> dict[str, Any]:
        current = pointer["champion"]
        earlier = [
            e
            for e in pointer["history"]
            if current is None or e["model_uri"] != current["model_uri"]
        ]
        if to_run_id is not None:
            earlier = [e for e in earlier if e["run_id"] == to_run_id]
        if not earlier:
            known = ", ".join(dict.fromkeys(e["run_id"] for e in pointer["history"])) or "none"
            raise InputError(
                f"{pointer_uri(models_uri, pipeline)}: no earlier champion"
                + (f" of run {to_run_id!r}" if to_run_id else "")
                + f" to roll back to; promoted runs: {known}"
            )
        return {
            **earlier[-1],
            "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "action": "rollback",
        }

    return _update(models_uri, pipeline, change)
