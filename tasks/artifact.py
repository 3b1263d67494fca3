"""model.tar.gz: manifest.json, saved_model/ (serving) and what the algorithm needs to continue
training (model.keras for the Keras algorithms)."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from tasks.atomic import atomic_path
from tasks.errors import InputError
from tasks.settings import setting, setting_text
from tasks.signing import key_origin, model_key

MAX_MEMBERS_ENV = "VISION_PIPELINES_MODEL_MAX_MEMBERS"
MAX_BYTES_ENV = "VISION_PIPELINES_MODEL_MAX_BYTES"
MANIFEST = "manifest.json"
CHECKSUMS = "checksums.json"
"""SHA-256 of every other member, HMAC-signed with the deployment's key (tasks.signing)."""
ALLOW_FOREIGN_ENV = "VISION_PIPELINES_ALLOW_FOREIGN_MODELS"
SAVED_MODEL = "saved_model"
KERAS_MODEL = "model.keras"
# A network's weights barely compress (8 % at gzip's default level for a ResNet-50 FCN) while
# deflating them takes 15 s on one core and inflating 3 s per step: the archive is still gzip
# (any tool opens model.tar.gz), written in stored blocks, 0.6 s each way.
ARCHIVE_COMPRESSLEVEL = 0


class ArtifactError(InputError):
    """A model.tar.gz that is missing, unreadable or not one of ours."""


MAX_HEADER_BYTES = 64 * 1024
"""The largest GNU long-name/long-link or pax extended header read (PATH_MAX is 4096): tarfile
reads such a header whole, before any member check."""
MAX_NAME_CHARS = 4096


class _OversizedHeader(ArtifactError):
    """Raised inside tarfile's header parsing (which knows no file name)."""


def _shown(name: str) -> str:
    """A member name as messages quote it: at most 100 characters."""
    return repr(name if len(name) <= 100 else name[:100] + "...")


class _CappedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses an oversized extended header before tarfile reads it."""

    def _check_header(self) -> None:
        if self.size > MAX_HEADER_BYTES:
            raise _OversizedHeader(
                f"an extended tar header (long name or pax) declares {self.size} bytes; at most "
                f"{MAX_HEADER_BYTES} are read"
            )

    def _proc_gnulong(self, tarfile: tarfile.TarFile) -> tarfile.TarInfo:
        self._check_header()
        return super()._proc_gnulong(tarfile)

    def _proc_pax(self, tarfile: tarfile.TarFile) -> tarfile.TarInfo:
        self._check_header()
        return super()._proc_pax(tarfile)

    def _refuse_sparse(self, *_: Any) -> None:
        """GNU sparse members (old-style header chains, pax 0.0/0.1/1.0 maps): refused before
        their map is read, whatever its length (a model archive holds plain files)."""
        raise _OversizedHeader(
            f"member {_shown(self.name)} is a GNU sparse file; a model archive holds regular "
            "files and folders only"
        )

    _proc_sparse = _proc_gnusparse_00 = _proc_gnusparse_01 = _proc_gnusparse_10 = _refuse_sparse


def archive_names(tar_path: Path, source: str) -> list[str]:
    """The member names of a .tar(.gz) we are given, its extended headers capped; `source`
    names it in a refusal."""
    try:
        with tarfile.open(tar_path, "r:*", tarinfo=_CappedTarInfo) as tar:
            return tar.getnames()
    except _OversizedHeader as e:
        raise ArtifactError(f"{source}: {e}") from None
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ArtifactError(f"{source} is not a readable .tar.gz ({str(e)[:300]})") from e


def _plain(value: Any) -> Any:
    """Tuples as lists, as JSON has them (so that a manifest equals itself after a round trip)."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _names(names: list[str]) -> str:
    """`a, b and c`."""
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


@dataclass(frozen=True)
class ModelManifest:
    """manifest.json: what the model is, what it was trained with, and how to feed it."""

    algorithm: str
    architecture: dict[str, Any]
    """The architecture-defining hyperparameters (algorithms.md), parsed."""
    class_names: list[str]
    hyperparameters: dict[str, str] = field(default_factory=dict)
    input: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] = field(default_factory=dict)
    frameworks: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    created: str = ""
    multi_label: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "architecture", _plain(dict(self.architecture)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, *, source: str) -> ModelManifest:
        """A manifest read from `source`; missing or mistyped fields are named."""
        if not isinstance(data, dict):
            raise ArtifactError(f"{source}: {MANIFEST} must be a JSON object")
        missing = [k for k in ("algorithm", "architecture", "class_names") if k not in data]
        if missing:
            raise ArtifactError(f"{source}: {MANIFEST} lacks {', '.join(missing)}")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if not isinstance(known["architecture"], dict) or not isinstance(
            known["class_names"], list
        ):
            raise ArtifactError(
                f"{source}: {MANIFEST} needs an object 'architecture' and a list 'class_names'"
            )
        return cls(**known)

    def check_compatible(
        self,
        *,
        algorithm: str,
        architecture: Mapping[str, Any],
        source: str,
        multi_label: bool | None = None,
    ) -> None:
        """Refuse to continue training this model as `algorithm` with another `architecture`
        (or another multi_label setting): one sentence naming every difference."""
        if self.algorithm != algorithm:
            raise ArtifactError(
                f"{source}: a {self.algorithm} model cannot continue as {algorithm}"
            )
        wanted = _plain(dict(architecture))
        different = [
            f"{k}={self.architecture.get(k)!r} in the model, {v!r} now"
            for k, v in wanted.items()
            if self.architecture.get(k) != v
        ]
        if different:
            raise ArtifactError(
                f"{source}: incremental training needs the same {_names(list(wanted))}; "
                + "; ".join(different)
            )
        if multi_label is not None and self.multi_label != multi_label:
            raise ArtifactError(
                f"{source}: the model was trained with multi_label={int(self.multi_label)}, "
                f"this job uses multi_label={int(multi_label)}"
            )


def _digests(root: Path) -> dict[str, str]:
    """SHA-256 of every file under `root` but the checksums, by archive name."""
    found = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = path.relative_to(root).as_posix()
        if name != CHECKSUMS:
            with open(path, "rb") as f:
                found[name] = hashlib.file_digest(f, "sha256").hexdigest()
    return found


def _signature(files: Mapping[str, str]) -> str:
    message = json.dumps(dict(files), sort_keys=True).encode()
    return hmac.new(model_key(), message, hashlib.sha256).hexdigest()


def write_artifact(tar_path: Path, manifest: ModelManifest, members: Mapping[str, Path]) -> None:
    """manifest.json, `members` (name in the archive -> file or folder) and checksums.json,
    written under a temporary name and renamed into place."""
    if {MANIFEST, CHECKSUMS} & set(members):
        raise ValueError(f"{MANIFEST} and {CHECKSUMS} are written here, not passed as members")
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp)
        (staged / MANIFEST).write_text(
            json.dumps(manifest.to_dict(), indent=2) + "\n", encoding="utf-8"
        )
        sources = {MANIFEST: staged / MANIFEST, **members}
        files = {}
        for name, path in sources.items():
            if path.is_dir():
                files.update({f"{name}/{k}": v for k, v in _digests(path).items()})
            else:
                with open(path, "rb") as f:
                    files[name] = hashlib.file_digest(f, "sha256").hexdigest()
        checksums = {"sha256": files, "hmac_sha256": _signature(files)}
        (staged / CHECKSUMS).write_text(json.dumps(checksums, indent=2) + "\n", encoding="utf-8")
        with (
            atomic_path(tar_path) as tmp_tar,
            tarfile.open(tmp_tar, "w:gz", compresslevel=ARCHIVE_COMPRESSLEVEL) as tar,
        ):
            for name, path in {CHECKSUMS: staged / CHECKSUMS, **sources}.items():
                tar.add(path, arcname=name)


class _AllowForeignModels(argparse.Action):
    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        os.environ[ALLOW_FOREIGN_ENV] = "1"


def add_foreign_model_option(parser: argparse.ArgumentParser) -> None:
    """`--allow-foreign-model`: load an archive this pipeline did not write (you trust it)."""
    parser.add_argument(
        "--allow-foreign-model",
        action=_AllowForeignModels,
        nargs=0,
        help="load a model.tar.gz without (matching) checksums from this pipeline; its "
        "SavedModel graph runs, so only one you trust",
    )


def _check_provenance(root: Path, source: Path) -> None:
    """Refuse an archive this pipeline did not write, or one changed since (loading a
    SavedModel runs its graph), unless the deployment or the user allows foreign models."""
    if setting_text(ALLOW_FOREIGN_ENV) == "1":
        return
    hint = (
        f"load it anyway only if you trust it: {ALLOW_FOREIGN_ENV}=1 "
        "(or --allow-foreign-model on the command line)"
    )
    try:
        recorded = json.loads((root / CHECKSUMS).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise ArtifactError(
            f"{source}: no readable {CHECKSUMS}; the archive was not written by vision-pipelines; "
            + hint
        ) from None
    files = recorded.get("sha256") if isinstance(recorded, dict) else None
    if files != _digests(root):
        raise ArtifactError(
            f"{source}: its files do not match its {CHECKSUMS} (changed after training); " + hint
        )
    if not hmac.compare_digest(str(recorded.get("hmac_sha256")), _signature(files)):
        raise ArtifactError(
            f"{source}: not signed with this deployment's key ({key_origin()}); " + hint
        )


@dataclass(frozen=True)
class ExtractedModel:
    manifest: ModelManifest
    root: Path

    @property
    def saved_model_dir(self) -> Path:
        return self.root / SAVED_MODEL

    @property
    def keras_path(self) -> Path:
        return self.root / KERAS_MODEL


def _checked_members(tar: tarfile.TarFile, source: Path) -> list[tarfile.TarInfo]:
    """Every member, checked by us whatever tarfile's filters do on this Python (CVE-2025-4517
    bypassed them with symlink chains): regular files and folders only, relative names that
    stay inside, and caps on the count and the unpacked size."""
    max_members = setting(MAX_MEMBERS_ENV)
    max_bytes = setting(MAX_BYTES_ENV)
    members, total = [], 0
    for member in tar:
        name = PurePosixPath(member.name)
        if len(member.name) > MAX_NAME_CHARS:
            raise ArtifactError(
                f"{source}: member {_shown(member.name)} has a name of {len(member.name)} "
                f"characters; at most {MAX_NAME_CHARS}"
            )
        if not (member.isreg() or member.isdir()):
            raise ArtifactError(
                f"{source}: member {_shown(member.name)} is a link or special file; a model "
                "archive holds only regular files and folders"
            )
        if name.is_absolute() or ".." in name.parts:
            raise ArtifactError(
                f"{source}: member {_shown(member.name)} points outside the archive"
            )
        members.append(_as_data(member))
        total += member.size
        if len(members) > max_members or total > max_bytes:
            raise ArtifactError(
                f"{source}: unpacks to more than {max_members} members or {max_bytes} bytes "
                f"(limits {MAX_MEMBERS_ENV}, {MAX_BYTES_ENV})"
            )
    return members


def _as_data(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """What tarfile's `data` filter makes of a file or folder, done by us too: a Python without
    extraction filters (Debian bookworm's 3.11.2, no PEP 706) must not apply set-uid bits, group
    or other write, or the archive's owners."""
    member.mode = (member.mode & 0o755) | (0o700 if member.isdir() else 0o600)
    member.uid, member.gid = os.getuid(), os.getgid()
    member.uname = member.gname = ""
    return member


# Python builds with PEP 706 filter too; those without (no `filter=` argument) get _as_data alone.
_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def safe_extract(tar_path: Path, dest: Path) -> None:
    """Unpack a .tar.gz we are given (a model, a hub module) into `dest`, members checked by
    us and confined to it."""
    if not tar_path.is_file():
        raise ArtifactError(f"{tar_path}: model file not found")
    try:
        with tarfile.open(tar_path, "r:*", tarinfo=_CappedTarInfo) as tar:
            tar.extractall(dest, members=_checked_members(tar, tar_path), **_FILTER)
            # The members end before the file does (tar's closing blocks, gzip's checksum):
            # read on to its end so that a file cut short or corrupted there is refused too.
            while tar.fileobj.read(1 << 20):
                pass
    except _OversizedHeader as e:
        raise ArtifactError(f"{tar_path}: {e}") from None
    except (tarfile.TarError, OSError, EOFError) as e:
        reason = str(e)[:300]
        raise ArtifactError(f"{tar_path}: not a readable .tar.gz ({reason})") from e


def extract_artifact(tar_path: Path, dest: Path) -> ExtractedModel:
    """Unpack a model.tar.gz into `dest` (members checked, confined to it) and read its
    manifest."""
    safe_extract(tar_path, dest)
    manifest_path = dest / MANIFEST
    if not manifest_path.is_file() or not (dest / SAVED_MODEL).is_dir():
        raise ArtifactError(
            f"{tar_path}: expected {MANIFEST} and {SAVED_MODEL}/ inside; is this a model made by "
            "vision-pipelines?"
        )
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{tar_path}: {MANIFEST} is not valid JSON ({e})") from e
    manifest = ModelManifest.from_dict(data, source=str(tar_path))
    _check_provenance(dest, tar_path)
    return ExtractedModel(manifest, dest)
