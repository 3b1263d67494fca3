"""Which pre-trained modules may run: a SavedModel is code (its graph can read and write files),
so a module is loaded only when the deployment trusts it.

Trusted are the modules of the deployment's own hub cache and mirror (a run's user chooses
neither), checked against the registry's SHA-256 pin where the entry has one, and any module whose
digest the registry pins or `VISION_PIPELINES_TRUSTED_MODULES` names. The pipeline's stage_model
task hands the trainer the mirror's archive with a grant: the archive's SHA-256, HMAC-signed with
the deployment's key (a hidden hyperparameter), so the trainer knows it from a user's. A module
from a run's `model` channel that is none of these is refused before it is loaded.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tasks.algorithms.image_classification_tf.hub.registry import EXTRA_REGISTRY_ENV, Kind, registry
from tasks.errors import InputError
from tasks.settings import setting_text
from tasks.signing import model_key

TRUSTED_ENV = "VISION_PIPELINES_TRUSTED_MODULES"
GRANT_HYPERPARAMETER = "_vision_pipelines_staged_module"
"""The stage_model task's grant for the archive it staged (reserved names reach the trainer
without being hyperparameters of the table)."""


class UntrustedModuleError(InputError):
    """A SavedModel this deployment has not pinned."""


@dataclass(frozen=True)
class TrustedModule:
    """A SavedModel folder that passed the trust check, with the digest it had then."""

    folder: Path
    digest: str
    source: str
    input_size: int | None = None
    """The square input the registry documents for it; None for a module the registry does not
    describe (a run's own, or one inside our model.tar.gz)."""


def module_digest(folder: Path) -> str:
    """SHA-256 over the module's files (relative name and content digest of each, sorted): the
    same for a folder, its `.tar.gz` and its copy in a hub cache."""
    lines = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with open(path, "rb") as f:
            lines.append(
                f"{hashlib.file_digest(f, 'sha256').hexdigest()}  "
                f"{path.relative_to(folder).as_posix()}\n"
            )
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def trusted_digests() -> dict[str, str]:
    """Every digest this deployment trusts -> what pins it."""
    found = {
        digest: f"registry entry {m.model_id} ({kind})"
        for m in registry().values()
        for kind, digest in m.sha256.items()
    }
    for digest in (setting_text(TRUSTED_ENV) or "").split(","):
        if digest.strip():
            found[digest.strip().lower()] = TRUSTED_ENV
    return found


def from_registry(folder: Path, model_id: str, kind: Kind, where: str) -> TrustedModule:
    """A module of the deployment's cache or mirror (found at `where`): its registry pin, where
    it has one, must match."""
    digest = module_digest(folder)
    pinned = registry()[model_id].sha256.get(kind)
    if pinned and pinned != digest:
        raise UntrustedModuleError(
            f"{where}: the {kind.replace('_', ' ')} module of {model_id!r} has SHA-256 {digest}, "
            f"but the model registry pins {pinned}; the cache or mirror holds another module "
            "than the one pinned: replace it with the pinned download or re-pin it"
        )
    return TrustedModule(folder, digest, model_id, registry()[model_id].input_size)


def from_user(folder: Path, source: str) -> TrustedModule:
    """A module a run named (the `model` channel): only a pinned one."""
    digest = module_digest(folder)
    if digest not in trusted_digests():
        raise UntrustedModuleError(
            f"{source}: a SavedModel this deployment does not trust (SHA-256 {digest}); loading "
            "a model runs its graph, so a 'model' channel takes only a model.tar.gz this "
            "deployment trained or a pre-trained module the deployment pinned: its digest in "
            f'the model registry ({EXTRA_REGISTRY_ENV}, an entry\'s "sha256") or in {TRUSTED_ENV}'
        )
    return TrustedModule(folder, digest, source)


def from_trusted_source(folder: Path, source: str) -> TrustedModule:
    """A module trusted for where it comes from, not for its digest: inside a model.tar.gz whose
    signature extract_artifact checked, or named by the person at the command line themselves
    (`tasks.hub package --model`). The op allow-list still applies when it is loaded."""
    return TrustedModule(folder, module_digest(folder), source)


def _grant_mac(archive_sha256: str) -> str:
    message = f"staged-module:{archive_sha256}".encode()
    return hmac.new(model_key(), message, hashlib.sha256).hexdigest()


def staging_grant(archive_sha256: str) -> str:
    """The grant the deployment's stage_model task gives the archive it staged."""
    return f"{archive_sha256}:{_grant_mac(archive_sha256)}"


def trust_for_archive(
    archive: Path, grant: str | None, model_id: str
) -> Callable[[Path, str], TrustedModule]:
    """How to trust the module unpacked from `archive`: as the registry's `model_id` when the
    deployment granted this very archive (its pin, if any, still applies), else as a user's."""
    if grant and ":" in grant:
        granted_sha, mac = grant.split(":", 1)
        with open(archive, "rb") as f:
            actual = hashlib.file_digest(f, "sha256").hexdigest()
        if actual == granted_sha and hmac.compare_digest(mac, _grant_mac(actual)):
            return lambda folder, source: from_registry(folder, model_id, "feature_vector", source)
    return from_user
