"""Sharded batch transform without Airflow: listing, splitting, the shard listings, the join."""

from __future__ import annotations

import json

import pytest

from tasks.data.synthetic import make_shapes_dataset
from tasks.errors import InputError
from tasks.transform_shards import (
    MAX_SHARDS,
    Input,
    join,
    list_inputs,
    read_inputs,
    shard_ranges,
    shard_uri,
    split,
    write_shards,
)
from tests.s3 import BUCKET


def _covers(ranges, total):
    assert [i for r in ranges for i in r] == list(range(total))  # contiguous, in order, once
    assert max(map(len, ranges)) - min(map(len, ranges)) <= 1


@pytest.mark.parametrize(
    "total, shards, size, expected",
    [
        (10, 3, None, 3),
        (2, 5, None, 2),  # never an empty shard
        (100_000, 1000, None, MAX_SHARDS),
        (100_000, None, 10, MAX_SHARDS),  # a small shard size makes larger shards, not more
        (1_000_000, MAX_SHARDS, None, MAX_SHARDS),
        (95, None, 10, 10),
        (7, None, None, 1),
    ],
)
def test_the_map_length_never_exceeds_its_cap(total, shards, size, expected):
    ranges = shard_ranges(total, shards, shard_size=size)
    assert len(ranges) == expected <= MAX_SHARDS
    _covers(ranges, total)


def test_a_shard_count_below_one_is_refused_with_the_range():
    with pytest.raises(InputError, match=f"transform_shards got 0; allowed: 1 to {MAX_SHARDS}"):
        shard_ranges(10, 0)


def test_a_folder_is_listed_as_the_transform_names_it(tmp_path):
    images = make_shapes_dataset(tmp_path / "images", per_class=3, size=8)
    (images / "nested").mkdir()
    (images / "nested" / "a.PNG").write_bytes(b"png")
    (images / "notes.txt").write_text("not an image")
    inputs = list_inputs(f"file://{images}")
    expected = sorted(
        p.relative_to(images).as_posix()
        for p in images.rglob("*")
        if p.suffix.lower() in (".jpg", ".png")
    )
    assert [i.name for i in inputs] == expected
    assert inputs[0].uri == f"file://{images}/{inputs[0].name}"


def test_a_lst_and_a_manifest_are_listed_in_their_own_order(tmp_path):
    (tmp_path / "b.jpg").write_bytes(b"x")
    (tmp_path / "a.jpg").write_bytes(b"x")
    lst = tmp_path / "data.lst"
    lst.write_text("0\t0\tb.jpg\n1\t1\ta.jpg\n")
    assert list_inputs(f"file://{lst}") == [
        Input("b.jpg", f"file://{tmp_path}/b.jpg"),
        Input("a.jpg", f"file://{tmp_path}/a.jpg"),
    ]
    manifest = tmp_path / "data.manifest"
    manifest.write_text('{"source-ref": "b.jpg"}\n{"source-ref": "a.jpg"}\n')
    assert [i.name for i in list_inputs(f"file://{manifest}")] == ["b.jpg", "a.jpg"]


def test_a_missing_or_empty_input_is_named(tmp_path):
    with pytest.raises(InputError, match=f"transform input file://{tmp_path}/none does not"):
        list_inputs(f"file://{tmp_path}/none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .jpeg, .jpg, .png images under this folder"):
        list_inputs(f"file://{tmp_path}/empty")


def test_shards_are_written_under_the_run_and_read_back(tmp_path):
    inputs = [Input(f"{i:03d}.jpg", f"file:///data/{i:03d}.jpg") for i in range(10)]
    out = tmp_path / "batch_transform"
    (out / "shards" / "00007").mkdir(parents=True)  # an earlier attempt's, with more shards
    (out / "predictions.jsonl").write_text("stale\n")
    listings = write_shards(inputs, shard_ranges(10, 3), f"file://{out}")
    assert listings == [f"file://{out}/shards/0000{i}.inputs" for i in range(3)]
    assert sorted(p.name for p in out.iterdir()) == ["shards"]
    assert sorted(p.name for p in (out / "shards").iterdir()) == [
        f"0000{i}.inputs" for i in range(3)
    ]
    names = [n for i in range(3) for n in read_inputs(out / "shards" / f"0000{i}.inputs")[0]]
    assert names == [i.name for i in inputs]
    assert read_inputs(out / "shards" / "00000.inputs")[1][0] == "/data/000.jpg"


def test_a_bad_listing_line_is_named_with_its_line(tmp_path):
    listing = tmp_path / "x.inputs"
    listing.write_text('{"name": "a.jpg", "uri": "file:///d/a.jpg"}\n{"name": 3}\n')
    with pytest.raises(InputError, match=r"x.inputs:2: expected a JSON object with string"):
        read_inputs(listing)


def test_a_listing_may_point_only_where_runs_may_read(tmp_path, monkeypatch):
    """An `.inputs` file given as transform input cannot read outside the allowed prefixes."""
    monkeypatch.setenv("VISION_PIPELINES_ALLOWED_URIS", f"file://{tmp_path}/data/")
    listing = tmp_path / "x.inputs"
    listing.write_text('{"name": "passwd", "uri": "file:///etc/passwd"}\n')
    with pytest.raises(InputError, match="file:///etc/passwd"):
        read_inputs(listing)


def test_the_join_is_the_shards_in_order_with_their_masks(tmp_path):
    out = tmp_path / "batch_transform"
    for index, names in enumerate([["a", "b"], ["c"], ["d", "e"]]):
        shard = out / "shards" / f"{index:05d}"
        (shard / "predictions_masks").mkdir(parents=True)
        rows = [{"source-ref": n, "mask": f"predictions_masks/{n}.png"} for n in names]
        (shard / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        for n in names:
            (shard / "predictions_masks" / f"{n}.png").write_bytes(n.encode())
        (shard / "summary.json").write_text("{}")
    assert join(f"file://{out}", 3) == 5
    joined = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [r["source-ref"] for r in joined] == ["a", "b", "c", "d", "e"]
    assert all((out / r["mask"]).read_bytes() == r["source-ref"].encode() for r in joined)
    assert not (out / "summary.json").exists()
    with pytest.raises(InputError, match="shard 3 wrote no predictions.jsonl"):
        join(f"file://{out}", 4)


def test_an_object_storage_folder_is_listed_without_downloads(s3, tmp_path):
    for name in ("b/2.png", "a/1.jpg", "a/notes.txt"):
        s3.put_object(Bucket=BUCKET, Key=f"predict/{name}", Body=b"x")
    listings = split(f"s3://{BUCKET}/predict", f"s3://{BUCKET}/run/batch_transform", 2)
    assert listings == [
        f"{shard_uri(f's3://{BUCKET}/run/batch_transform', i)}.inputs" for i in (0, 1)
    ]
    body = s3.get_object(Bucket=BUCKET, Key="run/batch_transform/shards/00000.inputs")["Body"]
    assert json.loads(body.read()) == {"name": "a/1.jpg", "uri": f"s3://{BUCKET}/predict/a/1.jpg"}
