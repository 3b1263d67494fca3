from __future__ import annotations

import pytest

from tasks.atomic import atomic_path, atomic_write_text, temporary_name


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_a_complete_write_replaces_the_file(tmp_path):
    target = tmp_path / "sub" / "metrics.json"
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["metrics.json"]


def test_temporary_names_differ_between_writers_of_the_same_file():
    names = {temporary_name("model.tar.gz") for _ in range(100)}
    assert len(names) == 100
    assert all(n.startswith(".model.tar.gz.tmp-") for n in names)


def test_stale_temporary_files_are_cleaned_on_the_next_write(tmp_path):
    """Hardening item 8: a SIGKILLed writer left `.name.tmp-*` files for ever. The next write
    removes those older than a day; a live writer's (fresh) one stays."""
    import os
    import time

    from tasks.atomic import STALE_SECONDS, atomic_write_text

    stale = tmp_path / ".metrics.json.tmp-dead0000"
    live = tmp_path / ".metrics.json.tmp-live0000"
    stale.write_text("half")
    live.write_text("being written")
    old = time.time() - STALE_SECONDS - 60
    os.utime(stale, (old, old))
    atomic_write_text(tmp_path / "metrics.json", "{}")
    assert (tmp_path / "metrics.json").read_text() == "{}"
    assert not stale.exists() and live.exists()


def test_an_upload_to_a_local_path_is_flushed_before_and_after_its_rename(tmp_path, monkeypatch):
    """Hardening, third pass: promote renamed the champion's model into place without fsync, so
    a crash could leave the pointer naming a file that never reached the disk."""
    import os

    from tasks import atomic
    from tasks.staging import upload

    synced = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    local = tmp_path / "model.tar.gz"
    local.write_bytes(b"model")
    target = tmp_path / "models" / "run" / "model.tar.gz"
    upload(local, f"file://{target}")
    assert target.read_bytes() == b"model"
    assert ".model.tar.gz.tmp-" in synced[0]  # the data, before the rename
    assert synced[1] == str(target.parent)  # the folder, after it
