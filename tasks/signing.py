"""The deployment's model-signing key: `VISION_PIPELINES_MODEL_KEY`, else a key file generated on
first use on the deployment's own machine, so that archives are signed by default (a SavedModel
is code: only archives this deployment wrote are loaded). A step (a pod, a container, the local
runner's process) never generates one: it is given the deployment's (`require_deployment_key`)."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import tempfile
from pathlib import Path

from tasks.errors import InputError
from tasks.settings import setting_text

KEY_ENV = "VISION_PIPELINES_MODEL_KEY"
KEY_FILE_ENV = "VISION_PIPELINES_MODEL_KEY_FILE"
KEY_FILE_NAME = "vision-pipelines-model.key"
MIN_KEY_BYTES = 32
_GENERATED: set[Path] = set()
"""Key files this process generated (key_origin)."""
log = logging.getLogger(__name__)


def key_file() -> Path:
    """Where the generated key is kept: `$VISION_PIPELINES_MODEL_KEY_FILE`, else beside the
    deployment's Airflow settings (`$AIRFLOW_HOME`), else `~/.config/vision-pipelines/`."""
    if path := setting_text(KEY_FILE_ENV):
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
            _GENERATED.add(path)
            log.warning(
                "no model-signing key on this machine: generated %s; archives signed with "
                "another machine's key will be refused here (give every machine of the "
                "deployment the same key: %s)",
                path,
                KEY_ENV,
            )
    finally:
        os.unlink(tmp)


def key_origin() -> str:
    """Where this process's key comes from, for a refusal: a key generated just now on this
    machine is the usual reason another machine's archives do not verify."""
    if setting_text(KEY_ENV):
        return f"the key is {KEY_ENV}"
    path = key_file()
    if path in _GENERATED:
        return (
            f"this machine had no deployment key and generated its own at {path} just now: give "
            f"it the deployment's key ({KEY_ENV}, or the key file of the machine that signed it)"
        )
    return f"the key is the file {path}"


def _too_short(key: str, where: str) -> InputError | None:
    if len(key.encode()) >= MIN_KEY_BYTES:
        return None
    return InputError(
        f"{where}: the model-signing key is {len(key.encode())} bytes; at least {MIN_KEY_BYTES} "
        "are needed (e.g. the output of: openssl rand -hex 32)"
    )


def model_key() -> bytes:
    """The HMAC key archives are signed and checked with; generated on first use."""
    if key := setting_text(KEY_ENV):
        if error := _too_short(key, KEY_ENV):
            raise error
        return key.encode()
    path = key_file()
    try:
        if not path.exists():
            _generate(path)
        mode = path.stat().st_mode
        if mode & 0o077:
            raise InputError(
                f"{path}: the model-signing key file can be read by others (mode "
                f"{mode & 0o777:o}); make it readable by its owner only: chmod 600 {path}"
            )
        key = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(
            f"{path}: cannot read or create the model-signing key ({e}); set {KEY_ENV} or point "
            f"{KEY_FILE_ENV} at a writable file"
        ) from e
    if error := _too_short(key, str(path)):
        raise error
    return key.encode()


def require_deployment_key() -> None:
    """Refuse a step that has no deployment key: with one of its own (generated in a pod or a
    container that then goes away) it would sign models the deployment refuses."""
    if setting_text(KEY_ENV) or key_file().exists():
        model_key()  # a short or readable key is refused here too, before any work
        return
    raise InputError(
        f"this step has no model-signing key ({KEY_ENV} is not set and {key_file()} does not "
        f"exist); give it the deployment's key: {KEY_ENV} (a Kubernetes pod gets it from its "
        f"Secret), or {KEY_FILE_ENV} naming the deployment's key file, before it runs"
    )


def step_key_environment() -> dict[str, str]:
    """What a step process started on this machine needs to find the deployment's key (the key
    generated here on first use when none is set)."""
    model_key()
    return {} if setting_text(KEY_ENV) else {KEY_FILE_ENV: str(key_file())}
