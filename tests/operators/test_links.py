from __future__ import annotations

from operators.links import browsable_url


def test_s3_uris_open_in_the_console():
    assert browsable_url("s3://my-bucket/runs/run=1/train") == (
        "https://s3.console.aws.amazon.com/s3/buckets/my-bucket?prefix=runs/run%3D1/train/"
    )


def test_local_folders_have_no_storage_link_but_a_report_link():
    """A file:// link is dropped by the UI: local runs link to their report page instead."""
    from operators.links import report_url

    assert browsable_url("file:///data/runs/run=1/train") == ""
    assert report_url("file:///data/runs/image_classification/run=1/train") == (
        "/vision-pipelines/image_classification/run=1/"
    )
    assert report_url("s3://b/out/p/run=manual__x/evaluate") == "/vision-pipelines/p/run=manual__x/"
    assert report_url("file:///data/elsewhere") == ""
