from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from operators.data_prep import (
    LabelMapRemapOperator,
    LstGenerationOperator,
    ManifestValidationOperator,
    RecordIOPackOperator,
    SegmentationLayoutOperator,
)
from operators.refusals import RunRefused
from tasks.data.recordio_format import RecordIOReader
from tasks.data.synthetic import make_shapes_dataset


@pytest.fixture
def dataset(tmp_path):
    return make_shapes_dataset(tmp_path / "shapes", per_class=5, size=16)


def test_lists_then_packs_under_the_output_uri(dataset, tmp_path):
    out = tmp_path / "run"
    lists = LstGenerationOperator(
        task_id="make_lst",
        images_uri=f"file://{dataset}",
        output_uri=f"file://{out}/lists",
        validation_split="0.2",
    ).execute({})
    assert lists["num_classes"] == 4 and lists["num_training_samples"] == 16
    assert json.loads((out / "lists" / "classes.json").read_text()) == lists["classes"]
    packed = RecordIOPackOperator(
        task_id="pack",
        lst_uri=lists["train_lst"],
        images_uri=f"file://{dataset}",
        output_uri=f"file://{out}/rec",
        class_names=json.dumps(lists["classes"]),
    ).execute({})
    assert packed["records"] == 16
    with RecordIOReader(out / "rec" / "train.rec") as reader:
        assert len(list(reader)) == 16
    assert json.loads((out / "rec" / "classes.json").read_text()) == lists["classes"]


def test_pack_fails_on_a_broken_image_naming_the_line(dataset, tmp_path):
    out = tmp_path / "run"
    lists = LstGenerationOperator(
        task_id="make_lst", images_uri=f"file://{dataset}", output_uri=f"file://{out}/lists"
    ).execute({})
    first = (out / "lists" / "train.lst").read_text().splitlines()[0].split("\t")[-1]
    (dataset / first).write_bytes(b"broken")
    with pytest.raises(RunRefused, match=f"line 1: image .*{first} does not decode"):
        RecordIOPackOperator(
            task_id="pack",
            lst_uri=lists["train_lst"],
            images_uri=f"file://{dataset}",
            output_uri=f"file://{out}/rec",
            class_names=lists["classes"],
        ).execute({})
    assert not (out / "rec" / "train.rec").exists()


def test_too_small_a_dataset_for_the_split(tmp_path):
    root = make_shapes_dataset(tmp_path / "one", per_class=1, size=8, classes=("circle",))
    with pytest.raises(RunRefused, match="both need at least one image"):
        LstGenerationOperator(
            task_id="l", images_uri=f"file://{root}", output_uri=f"file://{tmp_path}/o"
        ).execute({})


def test_manifest_validation_saves_the_result_even_when_it_fails(tmp_path):
    manifest = tmp_path / "train.manifest"
    manifest.write_text(
        '{"source-ref": "a.jpg", "class": "0"}\n{"source-ref": "a.jpg", "class": "9"}\n'
    )
    op = ManifestValidationOperator(
        task_id="v",
        manifest_uri=f"file://{manifest}",
        output_uri=f"file://{tmp_path}/out",
        num_classes="2",
    )
    with pytest.raises(RunRefused, match="line 2: label 9 is outside 0..1"):
        op.execute({})
    saved = json.loads((tmp_path / "out" / "manifest_validation.json").read_text())
    assert saved["success"] is False


def test_label_map_remap(tmp_path):
    src = tmp_path / "ann"
    src.mkdir()
    Image.fromarray(np.array([[0, 5], [2, 255]], np.uint8), mode="L").save(src / "a.png")
    (tmp_path / "map.json").write_text('{"map": {"0": 5, "1": 0, "2": 2}}')
    result = LabelMapRemapOperator(
        task_id="r",
        annotations_uri=f"file://{src}",
        label_map_uri=f"file://{tmp_path}/map.json",
        output_uri=f"file://{tmp_path}/out",
    ).execute({})
    assert result["annotations"] == 1
    assert np.asarray(Image.open(tmp_path / "out" / "a.png")).tolist() == [[1, 0], [2, 255]]


def test_lists_from_a_manifest_are_validated_first(tmp_path):
    from tasks.data.synthetic import make_multilabel_dataset

    manifest = make_multilabel_dataset(tmp_path / "data", count=8, size=16)
    out = tmp_path / "out"
    lists = LstGenerationOperator(
        task_id="l",
        images_uri=f"file://{manifest}",
        output_uri=f"file://{out}",
        label_format="multi-hot",
        validation_split="0.25",
    ).execute({})
    assert lists["multi_label"] == 1 and lists["num_classes"] == 4
    assert lists["image_root"] == f"file://{manifest.parent}"
    first = (out / "train.lst").read_text().splitlines()[0].split("\t")
    assert len(first) == 6 and first[-1].startswith("images/")
    lines = manifest.read_text().splitlines()
    manifest.write_text(
        "\n".join([*lines[:2], '{"source-ref": "images/x.jpg", "class": 3}', *lines[2:]]) + "\n"
    )
    with pytest.raises(RunRefused, match="line 3: class = 3: expected a list"):
        LstGenerationOperator(
            task_id="l",
            images_uri=f"file://{manifest}",
            output_uri=f"file://{out}",
            label_format="multi-hot",
        ).execute({})
    assert json.loads((out / "manifest_validation.json").read_text())["success"] is not None


class _TI:
    def __init__(self):
        self.pushed = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


def test_a_run_records_itself_and_a_failed_step_its_reason(tmp_path):
    """A run that fails in make_lst is listed by the reports with its reason: run.json names
    the Airflow run, the step's summary.json says why."""
    from types import SimpleNamespace

    empty = tmp_path / "empty"
    empty.mkdir()
    run = tmp_path / "runs" / "image_classification" / "run=20260101T000000"
    ti = _TI()
    context = {
        "ti": ti,
        "run_id": "scheduled__2026-01-01T00:00:00+00:00",
        "logical_date": None,
        "dag": SimpleNamespace(dag_id="image_classification"),
        "params": {"epochs": 2},
    }
    with pytest.raises(RunRefused) as failed:
        LstGenerationOperator(
            task_id="make_lst", images_uri=f"file://{empty}", output_uri=f"file://{run}/lists"
        ).execute(context)
    record = json.loads((run / "run.json").read_text())
    assert record["run_id"] == context["run_id"] and record["params"] == {"epochs": 2}
    assert record["dag_id"] == "image_classification"
    summary = json.loads((run / "lists" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["step"] == "make_lst"
    assert summary["failure"] == "bad_input" and summary["reason"] == str(failed.value)
    assert ti.pushed["run_outputs_uri"] == f"file://{run}/lists"


def test_uris_outside_the_allow_list_fail_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("VISION_PIPELINES_ALLOWED_URIS", f"file://{tmp_path}/allowed")
    out = tmp_path / "elsewhere" / "run=1" / "lists"
    with pytest.raises(RunRefused, match="outside the locations this deployment"):
        LstGenerationOperator(
            task_id="make_lst", images_uri="file:///etc", output_uri=f"file://{out}"
        ).execute({"run_id": "r"})
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize(
    "label",
    ['"20000000"', '"1e10"', "1e400", '"Infinity"', '"NaN"', "[0, 1e400]"],
)
def test_a_manifest_class_index_cannot_size_the_workers_memory(tmp_path, label):
    """Hardening item 2: make_lst built one class name per index up to the largest label (label
    "20000000" took 1.4 GiB, "1e10" a MemoryError) and 1e400 or "Infinity" raised OverflowError,
    an internal error that was retried. Now: one sentence naming the line, no retry."""
    (tmp_path / "a.jpg").write_bytes(b"")
    manifest = tmp_path / "train.manifest"
    manifest.write_text(
        '{"source-ref": "a.jpg", "class": 0}\n' + f'{{"source-ref": "b.jpg", "class": {label}}}\n'
    )
    with pytest.raises(RunRefused, match=r"line 2: class = .*: ") as refused:
        LstGenerationOperator(
            task_id="l", images_uri=f"file://{manifest}", output_uri=f"file://{tmp_path}/out"
        ).execute({})
    assert len(str(refused.value)) < 600


def test_an_overlong_manifest_line_is_refused_without_being_kept(tmp_path, monkeypatch):
    """Hardening item 6: one 200 MiB line peaked at 1.4 GiB and was accepted. Now a line over
    the cap is one problem, read in bounded pieces."""
    import tasks.data.augmented_manifest as manifests

    monkeypatch.setattr(manifests, "MAX_MANIFEST_LINE_BYTES", 1024)
    manifest = tmp_path / "train.manifest"
    manifest.write_text(
        '{"source-ref": "a.jpg", "class": 0}\n'
        + '{"source-ref": "b.jpg", "class": 1, "note": "'
        + "x" * 5000
        + '"}\n'
        + '{"source-ref": "c.jpg", "class": 1}\n'
    )
    with pytest.raises(manifests.ManifestError) as refused:
        manifests.check_manifest(manifest)
    assert "line 2: the line is longer than 1024 bytes" in str(refused.value)
    assert "line 3" not in str(refused.value)
    lines = list(manifests.bounded_lines(open(manifest, "rb"), 1024))  # noqa: SIM115
    assert lines[1] is None and lines[2].startswith(b'{"source-ref": "c.jpg"')


@pytest.mark.parametrize(
    ("operator", "argument", "allowed"),
    [
        (
            LstGenerationOperator,
            "images_uri",
            "a folder of class folders (<class>/<image>.jpg|.png) or an augmented manifest "
            "(.manifest/.jsonl)",
        ),
        (
            SegmentationLayoutOperator,
            "dataset_uri",
            "a folder holding train/, train_annotation/, validation/ and validation_annotation/",
        ),
    ],
)
def test_a_dataset_that_does_not_exist_is_named_by_its_form_field(
    tmp_path, operator, argument, allowed
):
    """One sentence naming the field, the URI and what it may hold (not a file system error)."""
    missing = f"file://{tmp_path}/no-such-dataset"
    with pytest.raises(RunRefused) as failed:
        operator(
            task_id="prepare",
            output_uri=f"file://{tmp_path}/run/data",
            field_titles={argument: "[Dataset] dataset_uri"},
            **{argument: missing},
        ).execute({})
    assert (
        str(failed.value) == f"[Dataset] dataset_uri {missing} does not exist; allowed: {allowed}"
    )


def test_a_label_map_that_does_not_parse_is_named_by_its_form_field(tmp_path):
    from tasks.data.synthetic import make_scenes_dataset

    data = make_scenes_dataset(tmp_path / "scenes", train=2, validation=1, size=(8, 6))
    label_map = tmp_path / "map.json"
    label_map.write_text("{not json")
    with pytest.raises(RunRefused) as failed:
        SegmentationLayoutOperator(
            task_id="layout",
            dataset_uri=f"file://{data}",
            label_map_uri=f"file://{label_map}",
            output_uri=f"file://{tmp_path}/run/data",
            field_titles={"label_map_uri": "[Label map] label_map_uri"},
        ).execute({})
    assert str(failed.value).startswith(f"[Label map] label_map_uri file://{label_map}: ")
