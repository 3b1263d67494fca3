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
