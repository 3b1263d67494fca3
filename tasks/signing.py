"""The deployment's model-signing key: `VISION_PIPELINES_MODEL_KEY`, else a key file generated on
first use, so that archives are signed by default (a SavedModel is code: only archives this
deployment wrote are loaded)."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

from tasks.errors import InputError

KEY_ENV = "VISION_PIPELINES_MODEL_KEY"
KEY_FILE_ENV = "VISION_PIPELINES_MODEL_KEY_FILE"
KEY_FILE_NAME = "vision-pipelines-model.key"


def key_file() -> Path:
    """Where the generated key is kept: `$VISION_PIPELINES_MODEL_KEY_FILE`, else beside the
    deployment's Airflow settings (`$AIRFLOW_HOME`), else `~/.config/vision-pipelines/`."""
    if path := os.environ.get(KEY_FILE_ENV):
        return Path(path)
    if home := os.environ.get("AIRFLOW_HOME"):
        return Path(home) / KEY_FILE_NAME
    return Path.home() / ".config" / "vision-pipelines" / KEY_FILE_NAME


def _generate(path: Path) -> None:
    """A new random key at `path`, readable by its owner only; when another process made one
    first, theirs is kept (link() does not replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-key-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


def model_key() -> bytes:
    """The HMAC key archives are signed and checked with; generated on first use."""
    if key := os.environ.get(KEY_ENV):
        return key.encode()
    path = key_file()
    try:
        if not path.exists():
            _generate(path)
        key = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(
            f"{path}: cannot read or create the model-signing key ({e}); set {KEY_ENV} or point "
            f"{KEY_FILE_ENV} at a writable file"
        ) from e
    if len(key) < 32:
        raise InputError(
            f"{path}: the model-signing key is {len(key)} characters; at least 32 are needed "
            "(delete the file to have a new one generated)"
        )
    return key.encode()
