from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tasks.data.augmented_manifest import (
    ManifestError,
    label_format_of,
    read_manifest,
    to_lst_entries,
)
from tasks.data.manifest_validation import validate_manifest
from tasks.data.synthetic import write_reference_manifest
from tasks.manifest import main as manifest_cli


def write(tmp_path, rows, name="train.manifest"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_label_format_from_content_type():
    assert label_format_of("application/x-recordio") is None
    assert label_format_of("application/x-recordio; label-format=class-id") == "class-id"
    with pytest.raises(ManifestError, match="label-format must be one of multi-hot, class-id"):
        label_format_of("application/x-recordio; label-format=onehot")


def test_single_and_multi_label_encodings(tmp_path):
    single = write(
        tmp_path,
        [
            {"source-ref": "a.jpg", "class": "2"},
            {"source-ref": "b.jpg", "class": 0, "class-metadata": {}},
        ],
    )
    records, problems = read_manifest(single, num_classes=3)
    assert problems == [] and [r.label for r in records] == [(2.0,), (0.0,)]
    hot = write(tmp_path, [{"source-ref": "a.jpg", "class": "[1, 0, 1]"}], "hot.manifest")
    ids = write(tmp_path, [{"source-ref": "a.jpg", "class": "[0, 2]"}], "ids.manifest")
    hot_records, _ = read_manifest(hot, multi_label=True, num_classes=3)
    id_records, _ = read_manifest(ids, multi_label=True, label_format="class-id", num_classes=3)
    assert hot_records[0].label == id_records[0].label == (1.0, 0.0, 1.0)


def test_every_bad_line_is_reported_with_its_number(tmp_path):
    manifest = write(
        tmp_path,
        [
            {"source-ref": "a.jpg", "class": "0"},
            "{not json",
            {"source-ref": "b.jpg"},
            {"source-ref": "c.jpg", "class": "1.5"},
            {"source-ref": "a.jpg", "class": "1"},
            {"source-ref": "../../etc/x.jpg", "class": "1"},
            {"source-ref": "d.jpg", "class": "7"},
            "[1, 2]",
        ],
    )
    with pytest.raises(ManifestError) as info:
        validate_manifest(
            manifest,
            attribute_names=["source-ref", "class"],
            content_type="application/x-recordio",
            num_classes=3,
            result_path=tmp_path / "result.json",
        )
    message = str(info.value)
    for expected in [
        "line 1: reference 'a.jpg' appears more than once",
        "line 2: not a JSON object",
        "line 3: missing attribute(s) class",
        'line 4: class = "1.5": a class index must be a whole number',
        "line 5: reference 'a.jpg' appears more than once",
        "line 6: reference '../../etc/x.jpg' must be",
        "line 7: label 7 is outside 0..2 (num_classes=3)",
        "line 8: expected a JSON object",
    ]:
        assert expected in message, expected
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["success"] is False


def test_multi_label_problems(tmp_path):
    manifest = write(
        tmp_path,
        [{"source-ref": "a.jpg", "class": "[0, 3]"}, {"source-ref": "b.jpg", "class": "[1, 1]"}],
    )
    with pytest.raises(ManifestError) as info:
        validate_manifest(
            manifest,
            attribute_names=["source-ref", "class"],
            content_type="application/x-recordio; label-format=class-id",
            num_classes=3,
        )
    assert 'line 1: class = "[0, 3]": class id 3 is outside 0..2' in str(info.value)
    assert 'line 2: class = "[1, 1]": class ids must be distinct' in str(info.value)


def test_attribute_names_are_checked(tmp_path):
    manifest = write(tmp_path, [{"image": "a.jpg", "class": "0"}])
    with pytest.raises(ManifestError, match="AttributeNames\\[0\\] must be the image reference"):
        read_manifest(manifest, attribute_names=["image", "class"])


def test_references_resolve_inside_the_root(tmp_path):
    manifest = write(
        tmp_path,
        [
            {"source-ref": "img/a.jpg", "class": "0"},
            {"source-ref": f"file://{tmp_path}/img/b.jpg", "class": "1"},
            {"source-ref": "s3://conn@bucket/k/c.jpg", "class": "0"},
            {"source-ref": "file:///etc/passwd", "class": "0"},
        ],
    )
    records, _ = read_manifest(manifest)
    with pytest.raises(ManifestError, match="line 4: reference 'file:///etc/passwd' is outside"):
        to_lst_entries(records, manifest)
    entries = to_lst_entries(records[:3], manifest)
    assert [e.path for e in entries] == ["img/a.jpg", "img/b.jpg", "bucket/k/c.jpg"]


def test_convert_writes_lst_and_packed_records(tmp_path):
    (tmp_path / "img").mkdir()
    for name in ("a", "b"):
        Image.new("RGB", (8, 8)).save(tmp_path / "img" / f"{name}.jpg")
    manifest = write(
        tmp_path,
        [
            {"source-ref": "img/a.jpg", "class": "[1, 0]"},
            {"source-ref": "img/b.jpg", "class": "[1, 1]"},
        ],
    )
    code = manifest_cli(
        [
            "convert",
            str(manifest),
            str(tmp_path / "out"),
            "--num-classes",
            "2",
            "--content-type",
            "application/x-recordio; label-format=multi-hot",
        ]
    )
    assert code == 0
    assert (tmp_path / "out.lst").read_text().splitlines()[1] == "1\t1.000000\t1.000000\timg/b.jpg"
    assert (tmp_path / "out.rec").stat().st_size > 0


def test_s3_references_outside_the_manifests_folder_are_refused(tmp_path):
    """Audit: `s3://other-bucket/x.jpg` was silently read as
    `<manifest folder>/other-bucket/x.jpg`."""
    from tasks.data.augmented_manifest import ManifestRecord, manifest_entries

    records = [
        ManifestRecord(1, "s3://b/data/cats/1.jpg", (0.0,)),
        ManifestRecord(2, "s3://other-bucket/secret.jpg", (1.0,)),
    ]
    with pytest.raises(ManifestError) as refused:
        manifest_entries(
            records, tmp_path / "train.manifest", manifest_uri="s3://b/data/train.manifest"
        )
    message = str(refused.value)
    assert "s3://b/data/train.manifest" in message and "line 2" in message
    assert "'s3://other-bucket/secret.jpg' is outside the manifest's folder s3://b/data/" in message
    entries, _ = manifest_entries(
        records[:1], tmp_path / "train.manifest", manifest_uri="s3://b/data/train.manifest"
    )
    assert entries[0].path == "cats/1.jpg"


def test_inference_manifests_cannot_reach_files_outside_their_folder(tmp_path, monkeypatch):
    """Audit: evaluate/transform resolved references from `/`, so `file:///etc/passwd` was
    opened, and the error told whether a file existed. Now every reference is checked first,
    and an existing file gets the same refusal as a missing one."""
    from tasks.steps.batch_prediction import inputs

    data, outside = tmp_path / "data", tmp_path / "private"
    data.mkdir(), outside.mkdir()
    Image.new("RGB", (8, 8)).save(data / "a.jpg")
    (outside / "secret.jpg").write_bytes(b"secret")
    manifest = write(
        data,
        [
            {"source-ref": "a.jpg"},
            {"source-ref": f"file://{outside}/secret.jpg"},
            {"source-ref": f"file://{outside}/missing.jpg"},
            {"source-ref": "s3://other-bucket/x.jpg"},
        ],
        name="input.manifest",
    )
    monkeypatch.setenv("VISION_PIPELINES_ALLOWED_URIS", f"file://{tmp_path}/,s3://ml-data/")
    with pytest.raises(ManifestError) as refused:
        inputs(manifest)
    message = str(refused.value)
    assert message.startswith(f"{manifest}: 3 problems")
    for line, ref in [(2, "secret.jpg"), (3, "missing.jpg")]:
        assert f"line {line}: reference 'file://{outside}/{ref}' is outside {data}" in message
    assert "line 4: reference 's3://other-bucket/x.jpg' is outside the locations" in message
    names, paths = inputs(write(data, [{"source-ref": "a.jpg"}], name="ok.manifest"))
    assert names == ["a.jpg"] and paths == [str(data / "a.jpg")]


def test_validation_finds_every_problem_and_duplicate_in_one_pass(tmp_path):
    """Records are checked as they pass (bounded memory): duplicates far apart, line numbers and
    the problem count stay exact, and the result file counts each expectation's failures."""
    rows = [{"source-ref": f"img/{i}.jpg", "class": str(i % 3)} for i in range(30)]
    rows[25] = {"source-ref": "img/2.jpg", "class": "0"}  # duplicate of line 3
    rows[17] = {"source-ref": "img/17.jpg", "class": "9"}
    rows[9] = "{broken"
    rows[4] = {"source-ref": "/etc/4.jpg", "class": "1"}
    manifest = write(tmp_path, rows)
    with pytest.raises(ManifestError) as info:
        validate_manifest(
            manifest,
            attribute_names=["source-ref", "class"],
            content_type="application/x-recordio",
            num_classes=3,
            result_path=tmp_path / "result.json",
        )
    message = str(info.value)
    assert message.startswith(f"{manifest}: 5 problems:")
    lines = [line.split(":")[0].strip() for line in message.splitlines()[1:]]
    assert lines == ["line 3", "line 5", "line 10", "line 18", "line 26"]
    assert "line 26: reference 'img/2.jpg' appears more than once" in message
    assert "line 18: label 9 is outside 0..2" in message
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["success"] is False and result["records"] == 29 and result["problems"] == 5
    assert result["unparsed_lines"] == 1 and result["duplicate_reference_lines"] == 2
    outcomes = {r["expectation_type"]: r for r in result["results"]}
    assert outcomes["expect_column_values_to_match_regex"]["result"] == {
        "element_count": 29,
        "unexpected_count": 1,
        "partial_unexpected_index_list": [5],
    }
    assert outcomes["expect_column_values_to_be_between"]["result"][
        "partial_unexpected_index_list"
    ] == [18]
    assert outcomes["expect_column_values_to_be_unique"]["success"] is False
    del rows[25], rows[17], rows[9], rows[4]
    assert (
        validate_manifest(
            write(tmp_path, rows, "ok.manifest"),
            attribute_names=["source-ref", "class"],
            content_type="application/x-recordio",
            num_classes=3,
        )
        == 26
    )


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking process (a pytest worker).
PEAK_MEMORY = """
import re, sys
from pathlib import Path
from tasks.data.manifest_validation import validate_manifest
records = validate_manifest(Path(sys.argv[1]), attribute_names=["source-ref", "class"],
                            content_type="application/x-recordio", num_classes=10)
peak_kib = re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)
print(records, int(peak_kib) // 1024)
"""


def test_validation_memory_stays_small_as_the_manifest_grows(tmp_path):
    """Audit item 9: validation kept every record (723 MiB for 1M lines, of which 228 MiB was
    importing Great Expectations). Each size runs in a fresh process; its peak RSS is read."""
    peaks = {}
    for lines in (20_000, 200_000):
        manifest = tmp_path / f"{lines}.manifest"
        write_reference_manifest(manifest, lines)
        done = subprocess.run(
            [sys.executable, "-c", PEAK_MEMORY, str(manifest)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
            check=True,
        )
        records, peaks[lines] = map(int, done.stdout.split())
        assert records == lines
    # Python, numpy and our modules take about 30 MiB; 180,000 more records add a few MiB.
    assert peaks[200_000] < 100, peaks
    assert peaks[200_000] - peaks[20_000] < 20, peaks


@pytest.mark.parametrize(
    "label", ["NaN", "Infinity", "9" * 5001, '"' + "9" * 5001 + '"', "[" + "9" * 5001 + "]"]
)
def test_labels_that_are_not_class_indices_are_sentences_with_their_line(tmp_path, label):
    """Hardening, third pass: NaN, inf or a 5001-digit integer ended in an internal error."""
    from tasks.data.augmented_manifest import check_manifest

    manifest = tmp_path / "train.manifest"
    manifest.write_text(
        '{"source-ref": "a.jpg", "class": 0}\n{"source-ref": "b.jpg", "class": ' + label + "}\n"
    )
    for multi_label in (False, True):
        with pytest.raises(ManifestError, match=r"(?s)train.manifest.*line 2: "):
            check_manifest(
                str(manifest), multi_label=multi_label, label_format="class-id", num_classes=3
            )
