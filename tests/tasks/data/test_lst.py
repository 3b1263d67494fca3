from __future__ import annotations

import os

import pytest

from tasks.data.lst import (
    LstEntry,
    LstError,
    list_class_folders,
    split_entries,
    write_lst,
)
from tasks.data.lst_validation import validate_lst


def make_tree(root, layout):
    for rel in layout:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_classes_follow_sorted_folders_like_im2rec(tmp_path):
    make_tree(tmp_path, ["dog/b.jpg", "dog/a.png", "cat/z.JPG", "cat/notes.txt", "emu/x.jpeg"])
    listing = list_class_folders(tmp_path)
    assert listing.classes == ["cat", "dog", "emu"]
    assert [(e.index, e.labels, e.path) for e in listing.entries] == [
        (0, (0.0,), "cat/z.JPG"),
        (1, (1.0,), "dog/a.png"),
        (2, (1.0,), "dog/b.jpg"),
        (3, (2.0,), "emu/x.jpeg"),
    ]


def test_empty_tree_is_refused(tmp_path):
    make_tree(tmp_path, ["a/readme.txt"])
    with pytest.raises(LstError, match="no images"):
        list_class_folders(tmp_path)


def test_line_format_matches_im2rec(tmp_path):
    path = tmp_path / "x.lst"
    entries = [LstEntry(3, (1.0, 0.0), "a/b.jpg"), LstEntry(4, (0.0, 2.0), "c.png")]
    write_lst(path, entries)
    assert path.read_text() == "3\t1.000000\t0.000000\ta/b.jpg\n4\t0.000000\t2.000000\tc.png\n"
    assert validate_lst(path) == entries


def test_split_uses_im2rec_arithmetic():
    entries = [LstEntry(i, (0.0,), f"{i}.jpg") for i in range(10)]
    split = split_entries(entries, train_ratio=0.7, test_ratio=0.1, shuffle=False)
    assert [e.index for e in split.test] == [0]
    assert [e.index for e in split.train] == list(range(1, 8))
    assert [e.index for e in split.validation] == [8, 9]
    shuffled = split_entries(entries, train_ratio=0.8, seed=1)
    assert sorted(e.index for e in shuffled.train + shuffled.validation) == list(range(10))
    assert shuffled == split_entries(entries, train_ratio=0.8, seed=1)


def test_non_utf8_names_are_refused_by_name(tmp_path):
    make_tree(tmp_path, ["cat/a.jpg"])
    (tmp_path / "cat" / os.fsdecode(b"b\xff.jpg")).write_bytes(b"x")
    with pytest.raises(LstError, match=r"1 file or folder name\(s\) are not valid UTF-8.*b\\xff"):
        list_class_folders(tmp_path)


def test_empty_image_file_is_listed_but_fails_validation(tmp_path):
    from tasks.data.lst_validation import LstValidationError, validate_lst

    make_tree(tmp_path / "img", ["cat/a.jpg"])
    listing = list_class_folders(tmp_path / "img")
    write_lst(tmp_path / "x.lst", listing.entries)
    with pytest.raises(LstValidationError, match="line 1: image .*a.jpg does not decode"):
        validate_lst(tmp_path / "x.lst", image_root=tmp_path / "img", check_images=True)
