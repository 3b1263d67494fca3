from __future__ import annotations

import pytest
from PIL import Image

from tasks.data.segmentation_layout import LayoutError, check_segmentation_layout


def make(root, split, stem, size=(8, 6), ann_size=None, ann_mode="L", image=True, ann=True):
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / f"{split}_annotation").mkdir(parents=True, exist_ok=True)
    if image:
        Image.new("RGB", size).save(root / split / f"{stem}.jpg")
    if ann:
        Image.new(ann_mode, ann_size or size).save(root / f"{split}_annotation" / f"{stem}.png")


def test_a_good_layout_counts_pairs(tmp_path):
    make(tmp_path, "train", "0000")
    make(tmp_path, "train", "coffee")
    make(tmp_path, "validation", "00a0")
    assert check_segmentation_layout(tmp_path) == {"train": 2, "validation": 1}


def test_every_problem_is_reported_in_one_pass(tmp_path):
    make(tmp_path, "train", "ok")
    make(tmp_path, "train", "orphan_image", ann=False)
    make(tmp_path, "train", "orphan_ann", image=False)
    make(tmp_path, "train", "rgb", ann_mode="RGB")
    make(tmp_path, "train", "sized", ann_size=(4, 4))
    (tmp_path / "label_map").mkdir()
    (tmp_path / "label_map" / "extra.json").write_text("{}")
    with pytest.raises(LayoutError) as info:
        check_segmentation_layout(tmp_path)
    message = str(info.value)
    for expected in [
        "train/orphan_image.jpg has no annotation train_annotation/orphan_image.png",
        "train_annotation/orphan_ann.png has no image in train/",
        "train_annotation/rgb.png: mode RGB; annotations must be single-channel",
        "train_annotation/sized.png is 4x4, its image sized.jpg is 8x6",
        "folder validation/ is missing",
        "folder validation_annotation/ is missing",
        "label_map/extra.json: expected only",
    ]:
        assert expected in message, expected


def test_command_line(tmp_path, capsys):
    from tasks.data.segmentation_layout import main

    make(tmp_path, "train", "a")
    assert main([str(tmp_path)]) == 2
    assert "folder validation/ is missing" in capsys.readouterr().err
    make(tmp_path, "validation", "b")
    assert main([str(tmp_path)]) == 0
    assert "OK, pairs {'train': 1, 'validation': 1}" in capsys.readouterr().out
