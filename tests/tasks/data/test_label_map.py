from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tasks.data.label_map import LabelMapError, parse_label_map, remap_folder


def annotation(path, values, mode="L"):
    img = Image.fromarray(np.asarray(values, dtype=np.uint8), mode="L")
    if mode == "P":
        img = img.convert("P")
        img.putpalette([v for i in range(256) for v in (i, 0, 255 - i)])
    img.save(path)


def test_scale_map_and_identity():
    assert parse_label_map('{"scale": "3"}', source="m").table()[[0, 3, 6, 8, 255]].tolist() == [
        0,
        1,
        2,
        2,
        255,
    ]
    mapped = parse_label_map('{"map": {"0": 5, "1": 0, "2": 2}}', source="m").table()
    assert mapped[[0, 5, 2, 255]].tolist() == [1, 0, 2, 255]
    assert mapped[7] == -1


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"scale": "0"}', "scale must be in 1..255"),
        ('{"map": {"0": 5, "1": 5}}', "same pixel value to two classes"),
        ('{"map": {"0": 255}}', "255 is ignore"),
        ('{"colors": {}}', "expected"),
        ("{", "not valid JSON"),
    ],
)
def test_bad_label_maps_name_the_file(text, match):
    with pytest.raises(LabelMapError, match=f"train_label_map.json: .*{match}"):
        parse_label_map(text, source="train_label_map.json")


def test_remap_keeps_mode_palette_and_ignore(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    annotation(src / "a.png", [[0, 3], [6, 255]], mode="P")
    annotation(src / "b.png", [[3, 3], [0, 0]], mode="L")
    rows = remap_folder(src, dst, parse_label_map('{"scale": 3}', source="m"), 3, "train")
    assert len(rows) == 2 and {r.split for r in rows} == {"train"}
    a = Image.open(dst / "a.png")
    assert a.mode == "P" and a.getpalette()[:6] == Image.open(src / "a.png").getpalette()[:6]
    assert np.asarray(a).tolist() == [[0, 1], [2, 255]]
    assert Image.open(dst / "b.png").mode == "L"


def test_uncovered_values_are_reported_per_file(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    annotation(src / "a.png", [[0, 5], [9, 2]])
    with pytest.raises(LabelMapError, match=r"a.png: pixel values \[9\] are not covered"):
        remap_folder(
            src, tmp_path / "dst", parse_label_map('{"map": {"0": 5, "1": 0, "2": 2}}', source="m")
        )


def test_rgb_annotation_is_refused(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (2, 2)).save(src / "c.png")
    with pytest.raises(LabelMapError, match="c.png: annotation mode RGB is not a single-channel"):
        remap_folder(src, tmp_path / "dst", parse_label_map('{"scale": 1}', source="m"))
