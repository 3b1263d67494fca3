from __future__ import annotations

from operators.links import browsable_url


def test_s3_uris_open_in_the_console():
    assert browsable_url("s3://aws_default@my-bucket/runs/run=1/train") == (
        "https://s3.console.aws.amazon.com/s3/buckets/my-bucket?prefix=runs/run%3D1/train/"
    )


def test_local_uris_are_left_alone():
    assert browsable_url("file:///data/runs/run=1/train") == "file:///data/runs/run=1/train"
