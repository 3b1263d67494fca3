"""The champion pointer of a pipeline: `<models_uri>/<pipeline>/champion.json`.

It holds the current champion and every earlier promotion (the history), written in one atomic
write. A promoted model is copied under `<models_uri>/<pipeline>/models/<run key>/`, so the
champion does not depend on a run folder that a rerun clears or a retention policy deletes.
Rollback promotes an earlier entry again (recorded as a promotion of its own).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec

from tasks.errors import InputError
from tasks.staging import upload

CHAMPION = "champion.json"


def pointer_uri(models_uri: str, pipeline: str) -> str:
    return f"{models_uri.rstrip('/')}/{pipeline}/{CHAMPION}"


def read_pointer(models_uri: str, pipeline: str) -> dict[str, Any]:
    """{"champion": entry or None, "history": [entries, oldest first]}."""
    uri = pointer_uri(models_uri, pipeline)
    fs, path = fsspec.core.url_to_fs(uri)
    if not fs.exists(path):
        return {"champion": None, "history": []}
    try:
        pointer = json.loads(fs.cat_file(path))
        if not isinstance(pointer, dict) or not isinstance(pointer.get("history"), list):
            raise ValueError("expected an object with a 'history' list")
    except ValueError as e:
        raise InputError(f"{uri}: not a champion pointer ({e})") from e
    return pointer


def champion_model(models_uri: str, pipeline: str) -> str:
    """The champion's model URI, or "" when the pipeline has none yet."""
    champion = read_pointer(models_uri, pipeline)["champion"]
    return champion["model_uri"] if champion else ""


def _write_pointer(models_uri: str, pipeline: str, pointer: Mapping[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / CHAMPION
        local.write_text(json.dumps(pointer, indent=2) + "\n", encoding="utf-8")
        upload(local, pointer_uri(models_uri, pipeline))


def data_fingerprint(uris: Sequence[str]) -> str:
    """SHA-256 over the files that define a run's data (its lists, its manifest)."""
    digest = hashlib.sha256()
    for uri in uris:
        fs, path = fsspec.core.url_to_fs(uri)
        if fs.exists(path):
            digest.update(uri.rsplit("/", 1)[-1].encode() + b"\0" + fs.cat_file(path))
    return "sha256:" + digest.hexdigest()


def promote(
    models_uri: str,
    pipeline: str,
    *,
    model_uri: str,
    run_key: str,
    metrics: Mapping[str, Any],
    run_id: str,
    data_date: str | None,
    fingerprint: str,
) -> dict[str, Any]:
    """Copy the model under the models prefix and make it the champion; return its entry."""
    target = f"{models_uri.rstrip('/')}/{pipeline}/models/{run_key}/model.tar.gz"
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "model.tar.gz"
        fs, path = fsspec.core.url_to_fs(model_uri)
        if not fs.exists(path):
            raise InputError(f"model {model_uri} does not exist: nothing to promote")
        fs.get_file(path, str(local))
        upload(local, target)
    entry = {
        "model_uri": target,
        "source_model_uri": model_uri,
        "metrics": dict(metrics),
        "run_id": run_id,
        "data_date": data_date,
        "data_fingerprint": fingerprint,
        "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "action": "promote",
    }
    pointer = read_pointer(models_uri, pipeline)
    _write_pointer(
        models_uri, pipeline, {"champion": entry, "history": [*pointer["history"], entry]}
    )
    return entry


def rollback(models_uri: str, pipeline: str, to_run_id: str | None = None) -> dict[str, Any]:
    """Make an earlier champion the champion again: the one of `to_run_id`, else the one
    before the current; return the new entry."""
    pointer = read_pointer(models_uri, pipeline)
    current = pointer["champion"]
    earlier = [
        e for e in pointer["history"] if current is None or e["model_uri"] != current["model_uri"]
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
    entry = {
        **earlier[-1],
        "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "action": "rollback",
    }
    _write_pointer(
        models_uri, pipeline, {"champion": entry, "history": [*pointer["history"], entry]}
    )
    return entry
