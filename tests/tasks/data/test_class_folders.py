"""Class-folder datasets: every layout problem named at once, and the stratified split."""

from __future__ import annotations

import pytest

from tasks.data.class_folders import ClassFolderError, check_class_folders, scan, stratified_split
from tasks.data.synthetic import make_shapes_dataset


def test_classes_are_sorted_folder_names_and_hidden_files_are_ignored(tmp_path):
    data = make_shapes_dataset(tmp_path, per_class=2, size=16, classes=("square", "circle"))
    (data / ".DS_Store").write_text("x")
    (data / "circle" / ".thumbs").write_text("x")
    dataset = check_class_folders(data)
    assert dataset.classes == ["circle", "square"]
    assert dataset.images[0] == ("circle/circle_0000.jpg", 0)
    assert dataset.counts() == {"circle": 2, "square": 2}


def test_every_problem_is_named_in_one_message(tmp_path):
    data = make_shapes_dataset(tmp_path, per_class=2, size=16, classes=("circle", "square"))
    (data / "loose.jpg").write_bytes((data / "circle" / "circle_0000.jpg").read_bytes())
    (data / "square" / "labels.csv").write_text("a,b")
    (data / "triangle").mkdir()
    (data / "circle" / "circle_0001.jpg").write_bytes(b"\x89PNG broken")
    with pytest.raises(ClassFolderError) as raised:
        check_class_folders(data)
    message = str(raised.value)
    assert message.startswith(f"{data}: 4 problems:")
    assert f"stray file {data}/loose.jpg: images go in a class folder" in message
    assert f"stray file {data}/square/labels.csv: not an image" in message
    assert f"class folder {data}/triangle holds no images" in message
    assert "circle_0001.jpg does not decode" in message


def test_fewer_than_two_classes_is_refused():
    _, problems = scan(["only/a.jpg"], source="s3://b/d")
    assert [p.message for p in problems] == ["1 class folder(s) (only); at least 2 are needed"]


def test_the_split_is_stratified_seeded_and_keeps_every_class():
    files = [f"a/{i}.jpg" for i in range(10)] + [f"b/{i}.jpg" for i in range(3)] + ["c/0.jpg"]
    dataset, problems = scan(files, source="d")
    assert not problems
    train, validation = stratified_split(dataset, 0.2, seed=5)
    held = {
        c: sum(1 for _, label in validation.images if label == i)
        for i, c in enumerate(dataset.classes)
    }
    assert held == {"a": 2, "b": 1, "c": 0}  # at least one, none from a single image
    assert len(train.images) + len(validation.images) == 14
    assert not {r for r, _ in train.images} & {r for r, _ in validation.images}
    assert stratified_split(dataset, 0.2, seed=5) == (train, validation)


def test_a_linked_class_folder_that_leads_outside_the_allowed_locations_is_refused(
    tmp_path, monkeypatch
):
    """Hardening, third pass: the dataset URI was checked, the files under its links were not
    (os.walk follows links, as im2rec does): a class folder linking to a private folder was
    listed and packed."""
    from tasks.data.lst import list_class_folders

    allowed = make_shapes_dataset(tmp_path / "allowed" / "shapes", per_class=2, size=8)
    private = make_shapes_dataset(tmp_path / "private", per_class=2, size=8)
    monkeypatch.setenv("VISION_PIPELINES_ALLOWED_URIS", f"file://{tmp_path}/allowed")
    check_class_folders(allowed)  # links that stay inside are followed as before
    (allowed / "secret").symlink_to(private / "circle", target_is_directory=True)
    for listing in (check_class_folders, list_class_folders):
        with pytest.raises(ValueError, match="secret/circle_0000.jpg' is outside the locations"):
            listing(allowed)
    monkeypatch.delenv("VISION_PIPELINES_ALLOWED_URIS")
    assert "secret" in check_class_folders(allowed).classes  # no allow-list: links are followed
