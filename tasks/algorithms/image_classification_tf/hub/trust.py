"""Which pre-trained modules may run: a SavedModel is code (its graph can read and write files),
so a module is loaded only when the deployment trusts it.

Trusted are the modules of the deployment's own hub cache and mirror (a run's user chooses
neither), checked against the registry's SHA-256 pin where the entry has one, and any module whose
digest the registry pins or `VISION_PIPELINES_TRUSTED_MODULES` names. A module from a run's
`model` channel that is neither is refused before it is loaded.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from tasks.algorithms.image_classification_tf.hub.registry import EXTRA_REGISTRY_ENV, Kind, registry
from tasks.errors import InputError

TRUSTED_ENV = "VISION_PIPELINES_TRUSTED_MODULES"


class UntrustedModuleError(InputError):
    """A SavedModel this deployment has not pinned."""


@dataclass(frozen=True)
class TrustedModule:
    """A SavedModel folder that passed the trust check, with the digest it had then."""

    folder: Path
    digest: str
    source: str


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
    for digest in os.environ.get(TRUSTED_ENV, "").split(","):
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
    return TrustedModule(folder, digest, model_id)


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


def from_command_line(folder: Path, source: str) -> TrustedModule:
    """A module the person at the command line named themselves (`tasks.hub package --model`):
    theirs to trust; the op deny-list still applies when it is loaded."""
    return TrustedModule(folder, module_digest(folder), source)


def from_signed_archive(folder: Path, source: str) -> TrustedModule:
    """A module inside a model.tar.gz whose signature extract_artifact checked."""
    return TrustedModule(folder, module_digest(folder), source)


def recheck(module: TrustedModule) -> None:
    """Refuse a module changed since it was checked (checked again right before loading)."""
    if module_digest(module.folder) != module.digest:
        raise UntrustedModuleError(
            f"{module.source}: its files changed after they were checked; not loaded"
        )
