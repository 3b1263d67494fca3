from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from tasks.artifact import (
    MANIFEST,
    SAVED_MODEL,
    ArtifactError,
    ModelManifest,
    archive_names,
    extract_artifact,
    safe_extract,
    write_artifact,
)

MANIFEST_VALUES = ModelManifest(
    algorithm="image-classification",
    architecture={"num_layers": 20, "image_shape": (3, 16, 16), "num_classes": 4},
    class_names=["a", "b", "c", "d"],
    hyperparameters={"epochs": "2"},
)


def _artifact(tmp_path, manifest=MANIFEST_VALUES):
    saved = tmp_path / "work" / SAVED_MODEL
    saved.mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(b"graph")
    extra = tmp_path / "work" / "weights.bin"
    extra.write_bytes(b"w")
    tar = tmp_path / "model.tar.gz"
    write_artifact(tar, manifest, {SAVED_MODEL: saved, "weights.bin": extra})
    return tar


def test_manifest_round_trips_through_the_archive(tmp_path):
    tar = _artifact(tmp_path)
    with tarfile.open(tar) as t:
        assert set(t.getnames()) >= {MANIFEST, SAVED_MODEL, "weights.bin"}
    extracted = extract_artifact(tar, tmp_path / "x")
    assert extracted.manifest == MANIFEST_VALUES
    assert extracted.manifest.architecture["image_shape"] == [3, 16, 16]
    assert (extracted.root / "weights.bin").read_bytes() == b"w"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("cut", [8, 40, 1024])
def test_an_archive_cut_short_after_its_members_is_refused(tmp_path, cut):
    """The archive is gzip in stored blocks: a cut inside tar's closing blocks or gzip's own
    checksum leaves every member whole, and an interrupted upload must still not load."""
    tar = _artifact(tmp_path)
    with tarfile.open(tar) as t:
        assert t.getmembers()  # whole, it opens
    tar.write_bytes(tar.read_bytes()[:-cut])
    with pytest.raises(ArtifactError, match="not a readable .tar.gz"):
        extract_artifact(tar, tmp_path / "x")


def test_compatibility_names_every_difference():
    MANIFEST_VALUES.check_compatible(
        algorithm="image-classification",
        architecture={"num_layers": 20, "image_shape": (3, 16, 16), "num_classes": 4},
        source="m.tar.gz",
    )
    with pytest.raises(ArtifactError) as refused:
        MANIFEST_VALUES.check_compatible(
            algorithm="image-classification",
            architecture={"num_layers": 32, "image_shape": (3, 24, 24), "num_classes": 4},
            source="m.tar.gz",
        )
    message = str(refused.value)
    assert "needs the same num_layers, image_shape and num_classes" in message
    assert "num_layers=20 in the model, 32 now" in message
    assert "image_shape=[3, 16, 16] in the model, [3, 24, 24] now" in message
    with pytest.raises(ArtifactError, match="a image-classification model cannot continue as x"):
        MANIFEST_VALUES.check_compatible(algorithm="x", architecture={}, source="m.tar.gz")
    with pytest.raises(ArtifactError, match="trained with multi_label=0, this job uses multi_la"):
        MANIFEST_VALUES.check_compatible(
            algorithm="image-classification",
            architecture={},
            source="m.tar.gz",
            multi_label=True,
        )


def test_a_manifest_without_its_fields_is_named(tmp_path):
    tar = _artifact(tmp_path)
    work = tmp_path / "broken"
    with tarfile.open(tar) as t:
        t.extractall(work, filter="data")
    (work / MANIFEST).write_text(json.dumps({"algorithm": "image-classification"}))
    broken = tmp_path / "broken.tar.gz"
    with tarfile.open(broken, "w:gz") as t:
        for p in work.iterdir():
            t.add(p, arcname=p.name)
    with pytest.raises(ArtifactError, match="manifest.json lacks architecture, class_names"):
        extract_artifact(broken, tmp_path / "y")


def _tar_with(tmp_path, add) -> Path:
    tar = tmp_path / "crafted.tar.gz"
    with tarfile.open(tar, "w:gz") as t:
        add(t)
    return tar


def _member(t, name, data=b"", **fields):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in fields.items():
        setattr(info, key, value)
    t.addfile(info, io.BytesIO(data))


def test_a_symlink_chain_archive_writes_nothing_outside(tmp_path):
    """CVE-2025-4517's shape: a chain of symlinks whose resolved path exceeds PATH_MAX, so
    tarfile's `filter="data"` (Python 3.11.7 here) cannot see that `escape` leads out of the
    folder; the old code wrote `escape/pwned.txt` into `outside/`."""
    (tmp_path / "outside").mkdir()
    comp, steps = "d" * 247, "abcdefghijklmnop"

    def add(t):
        path = ""
        for step in steps:
            _member(t, f"{path}{comp}", type=tarfile.DIRTYPE)
            _member(t, f"{path}{step}", type=tarfile.SYMTYPE, linkname=comp)
            path += comp + "/"
        chain = "/".join(steps) + "/" + "l" * 254
        _member(t, chain, type=tarfile.SYMTYPE, linkname="../" * len(steps))
        _member(t, "escape", type=tarfile.SYMTYPE, linkname=chain + "/../outside")
        _member(t, "escape/pwned.txt", b"pwned")

    with pytest.raises(ArtifactError, match="is a link or special file"):
        extract_artifact(_tar_with(tmp_path, add), tmp_path / "dest")
    assert list((tmp_path / "outside").iterdir()) == []


@pytest.mark.parametrize(
    ("name", "kind"),
    [("../up.txt", tarfile.REGTYPE), ("/abs.txt", tarfile.REGTYPE), ("h", tarfile.LNKTYPE)],
)
def test_members_that_leave_the_folder_or_are_not_files_are_refused(tmp_path, name, kind):
    def add(t):
        _member(
            t, name, b"x", type=kind, linkname="manifest.json" if kind == tarfile.LNKTYPE else ""
        )

    with pytest.raises(ArtifactError, match="points outside|link or special file"):
        extract_artifact(_tar_with(tmp_path, add), tmp_path / "dest")


def test_an_archive_that_unpacks_too_large_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("VISION_PIPELINES_MODEL_MAX_BYTES", str(2**20))
    tar = _tar_with(tmp_path, lambda t: _member(t, "zeros.bin", bytes(2 * 2**20)))
    assert tar.stat().st_size < 20_000  # compresses 100-fold: the cap is on unpacked bytes
    with pytest.raises(ArtifactError, match="unpacks to more than"):
        extract_artifact(tar, tmp_path / "dest")
    assert not (tmp_path / "dest" / "zeros.bin").exists()


def _repacked(tmp_path, tar, change) -> Path:
    work = tmp_path / "repack"
    with tarfile.open(tar) as t:
        t.extractall(work, filter="data")
    change(work)
    out = tmp_path / "repacked.tar.gz"
    with tarfile.open(out, "w:gz") as t:
        for p in work.iterdir():
            t.add(p, arcname=p.name)
    return out


def test_only_archives_this_pipeline_wrote_are_loaded(tmp_path, monkeypatch):
    """Audit: loading a SavedModel runs its graph, and any archive with a plausible manifest
    was loaded. Now: a changed or foreign archive is refused unless explicitly allowed."""
    monkeypatch.delenv("VISION_PIPELINES_ALLOW_FOREIGN_MODELS", raising=False)
    monkeypatch.delenv("VISION_PIPELINES_MODEL_KEY", raising=False)
    tar = _artifact(tmp_path)
    changed = _repacked(
        tmp_path, tar, lambda w: (w / SAVED_MODEL / "saved_model.pb").write_bytes(b"evil")
    )
    with pytest.raises(ArtifactError, match="do not match its checksums.json .changed after"):
        extract_artifact(changed, tmp_path / "a")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (tmp_path / "x").mkdir()
    foreign_tar = _repacked(foreign, tar, lambda w: (w / "checksums.json").unlink())
    with pytest.raises(ArtifactError, match="not written by vision-pipelines.*_MODELS=1"):
        extract_artifact(foreign_tar, tmp_path / "b")
    monkeypatch.setenv("VISION_PIPELINES_ALLOW_FOREIGN_MODELS", "1")
    assert extract_artifact(changed, tmp_path / "c").manifest == MANIFEST_VALUES


def test_with_a_deployment_key_archives_are_signed(tmp_path, monkeypatch):
    monkeypatch.delenv("VISION_PIPELINES_ALLOW_FOREIGN_MODELS", raising=False)
    monkeypatch.setenv("VISION_PIPELINES_MODEL_KEY", "k1" * 16)
    signed = _artifact(tmp_path / "one")
    assert extract_artifact(signed, tmp_path / "a").manifest == MANIFEST_VALUES
    monkeypatch.setenv("VISION_PIPELINES_MODEL_KEY", "k2" * 16)
    with pytest.raises(ArtifactError, match="not signed with this deployment's key"):
        extract_artifact(signed, tmp_path / "b")


def test_the_command_line_flag_allows_a_foreign_model(tmp_path, monkeypatch):
    import argparse

    from tasks.artifact import add_foreign_model_option

    monkeypatch.delenv("VISION_PIPELINES_ALLOW_FOREIGN_MODELS", raising=False)
    parser = argparse.ArgumentParser()
    add_foreign_model_option(parser)
    parser.parse_args([])
    assert "VISION_PIPELINES_ALLOW_FOREIGN_MODELS" not in os.environ
    parser.parse_args(["--allow-foreign-model"])
    assert os.environ["VISION_PIPELINES_ALLOW_FOREIGN_MODELS"] == "1"


def _recomputed(work: Path, hmac_value) -> None:
    """An attacker's archive: a changed graph and checksums recomputed over it."""
    import hashlib

    (work / SAVED_MODEL / "saved_model.pb").write_bytes(b"forged graph")
    checksums = json.loads((work / "checksums.json").read_text())
    files = checksums["sha256"]
    files[f"{SAVED_MODEL}/saved_model.pb"] = hashlib.sha256(b"forged graph").hexdigest()
    (work / "checksums.json").write_text(json.dumps({"sha256": files, "hmac_sha256": hmac_value}))


@pytest.mark.parametrize("hmac_value", [None, "0" * 64])
def test_without_a_configured_key_a_generated_one_signs_so_recomputed_checksums_are_refused(
    tmp_path, monkeypatch, hmac_value
):
    """Hardening item 5: with no key set, checksums were plain SHA-256 that anyone could
    recompute, and the forged saved_model/ loaded. Now a key is generated on first use."""
    from tasks.signing import KEY_ENV, KEY_FILE_ENV

    monkeypatch.delenv("VISION_PIPELINES_ALLOW_FOREIGN_MODELS", raising=False)
    monkeypatch.delenv(KEY_ENV, raising=False)
    key_file = tmp_path / "settings" / "model.key"
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file))
    tar = _artifact(tmp_path)
    assert key_file.is_file() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert extract_artifact(tar, tmp_path / "ok").manifest == MANIFEST_VALUES
    forged = _repacked(tmp_path, tar, lambda w: _recomputed(w, hmac_value))
    with pytest.raises(ArtifactError, match="not signed with this deployment's key"):
        extract_artifact(forged, tmp_path / "forged")


def test_short_keys_and_keys_others_can_read_are_refused(tmp_path, monkeypatch):
    """Hardening, third pass: a one-character key was accepted and a world-readable key file
    used silently."""
    from tasks.errors import InputError
    from tasks.signing import KEY_ENV, KEY_FILE_ENV, model_key

    monkeypatch.setenv(KEY_ENV, "k")
    with pytest.raises(
        InputError, match=f"{KEY_ENV}: the model-signing key is 1 bytes; at least 32"
    ):
        model_key()
    monkeypatch.delenv(KEY_ENV)
    key = tmp_path / "model.key"
    key.write_text("a" * 64 + "\n")
    key.chmod(0o644)
    monkeypatch.setenv(KEY_FILE_ENV, str(key))
    with pytest.raises(InputError, match="can be read by others .mode 644.*chmod 600"):
        model_key()
    key.chmod(0o600)
    assert model_key() == b"a" * 64


def test_a_machine_that_generated_its_own_key_says_so_when_an_archive_is_refused(
    tmp_path, monkeypatch
):
    """Hardening, third pass: a second machine generated its own key without a word and then
    refused the first one's archives as "not signed"."""
    from tasks.signing import KEY_ENV, KEY_FILE_ENV

    monkeypatch.delenv("VISION_PIPELINES_ALLOW_FOREIGN_MODELS", raising=False)
    monkeypatch.setenv(KEY_ENV, "first machine's key, 32 bytes or more")
    signed = _artifact(tmp_path / "first")
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "second" / "model.key"))
    with pytest.raises(ArtifactError, match="generated its own at .*second/model.key just now"):
        extract_artifact(signed, tmp_path / "x")


def test_the_generated_key_is_kept_and_reused(tmp_path, monkeypatch):
    from tasks.signing import KEY_ENV, KEY_FILE_ENV, model_key

    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "model.key"))
    first = model_key()
    assert len(first) == 64 and model_key() == first
    assert [p.name for p in tmp_path.iterdir()] == ["model.key"]


@pytest.mark.parametrize("kind", [tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE])
def test_an_oversized_extended_header_is_refused_before_tarfile_reads_it(tmp_path, kind):
    """Hardening item 3: a small model.tar.gz whose GNU long-name (or pax) header declared
    hundreds of MiB was read whole by tarfile before our caps applied (4.2 GB for 512 MiB), and
    the refusal quoted the whole name. Now the header's size is checked first."""
    declared = 16 * 2**20
    header = tarfile.TarInfo("././@LongLink")
    header.type, header.size = kind, declared
    payload = b"a" * declared if kind == tarfile.GNUTYPE_LONGNAME else b"9 a=b\n" * (declared // 6)
    raw = io.BytesIO()
    raw.write(header.tobuf(format=tarfile.GNU_FORMAT))
    raw.write(payload[:declared].ljust(declared, b"\n"))
    raw.write(b"\0" * (512 - declared % 512 if declared % 512 else 0))
    raw.write(tarfile.TarInfo("weights.bin").tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 1024)
    tar = tmp_path / "model.tar.gz"
    import gzip

    tar.write_bytes(gzip.compress(raw.getvalue(), compresslevel=9))
    assert tar.stat().st_size < 200_000
    with pytest.raises(ArtifactError) as refused:
        extract_artifact(tar, tmp_path / "dest")
    message = str(refused.value)
    assert f"declares {declared} bytes; at most 65536 are read" in message
    assert len(message) < 400 and str(tar) in message


def test_refusals_quote_at_most_a_short_member_name(tmp_path):
    long_name = "x" * 5000
    tar = _tar_with(tmp_path, lambda t: _member(t, long_name, b"w"))
    with pytest.raises(ArtifactError, match="has a name of 5000 characters; at most 4096") as e:
        extract_artifact(tar, tmp_path / "dest")
    assert len(str(e.value)) < 400


def test_a_gnu_sparse_member_is_refused_before_its_map_is_read(tmp_path):
    """Hardening, third pass: a GNU sparse-header chain of 1.1 MiB took 1.1 GB and 15 s before
    it was refused. Now a sparse member is refused at its first header."""
    header = tarfile.TarInfo("weights.bin")
    header.type = tarfile.GNUTYPE_SPARSE
    block = bytearray(header.tobuf(format=tarfile.GNU_FORMAT))
    block[482] = 1  # "isextended": a chain of sparse blocks follows
    block[148:156] = b" " * 8
    block[148:155] = f"{sum(block):06o}\0".encode()
    raw = io.BytesIO()
    raw.write(bytes(block) + b"\1" * 512 * 64 + b"\0" * 1024)
    tar = tmp_path / "model.tar.gz"
    with gzip.open(tar, "wb") as f:
        f.write(raw.getvalue())
    with pytest.raises(ArtifactError, match="'weights.bin' is a GNU sparse file"):
        safe_extract(tar, tmp_path / "out")
    with pytest.raises(ArtifactError, match="GNU sparse file"):
        archive_names(tar, "channel 'model'")


def test_a_step_without_the_deployment_key_refuses_to_start(tmp_path, shapes):
    """Issue 43: a trainer pod or container without the deployment key signed with a key it
    generated, so every model it trained was refused later. Now the step refuses first, in one
    sentence, and makes no key of its own; given the key file, the same step runs."""
    from tasks.signing import KEY_ENV, KEY_FILE_ENV
    from tests.conftest import run_cli

    missing = tmp_path / "no-key" / "model.key"
    without_key = {KEY_ENV: "", KEY_FILE_ENV: str(missing)}
    outputs = tmp_path / "outputs"
    job = ("tasks.job", "train", "--channel", f"training=file://{shapes}",
           "--ml-root", tmp_path / "ml", "--output-uri", f"file://{outputs}")  # fmt: skip
    train = ("tasks.train", "--algorithm", "image-classification", "--ml-root", tmp_path / "ml")
    for command in (job, train):
        done = run_cli(*command, env=without_key)
        assert done.returncode != 0
        message = f"FAILED: this step has no model-signing key ({KEY_ENV} is not set and {missing}"
        assert message in done.stdout + done.stderr, (done.stdout + done.stderr)[-2000:]
        assert "Traceback" not in done.stdout + done.stderr
    assert not missing.parent.exists() and not outputs.exists()  # no key made, nothing written


def test_the_local_runner_hands_its_steps_the_deployment_key(tmp_path, monkeypatch):
    """The Airflow machine generates the deployment key on first use (beside its settings) and
    names it to the step process it starts; with VISION_PIPELINES_MODEL_KEY set, that is
    inherited instead."""
    from tasks.signing import KEY_ENV, KEY_FILE_ENV, model_key, step_key_environment

    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    env = step_key_environment()
    assert env == {KEY_FILE_ENV: str(tmp_path / "airflow" / "vision-pipelines-model.key")}
    monkeypatch.setenv(KEY_FILE_ENV, env[KEY_FILE_ENV])
    assert model_key() == (tmp_path / "airflow" / "vision-pipelines-model.key").read_bytes().strip()
    monkeypatch.setenv(KEY_ENV, "the deployment's key, 32 bytes or more")
    assert step_key_environment() == {}
