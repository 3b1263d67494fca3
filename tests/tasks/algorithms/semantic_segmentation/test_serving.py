"""`python -m tasks.serve` with a segmentation model: the palette mask PNG and the float16
probabilities `.npy` batch transform writes, for one image per request."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from tasks.steps.batch_prediction import transform
from tests.serving import post, served

pytestmark = pytest.mark.integration


def test_masks_and_probabilities_as_batch_transform_writes_them(trained, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(1)
    sizes = {"odd.jpg": (57, 31), "wide.png": (90, 20)}
    for name, (w, h) in sizes.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(images / name)
    out = tmp_path / "out" / "predictions.jsonl"
    transform(trained.model_archive, images, out, probabilities=True)
    rows = {
        json.loads(line)["source-ref"]: json.loads(line) for line in out.read_text().splitlines()
    }
    with served(trained.model_archive) as url:
        for name, (w, h) in sizes.items():
            kind = "image/jpeg" if name.endswith(".jpg") else "image/png"
            image = (images / name).read_bytes()
            status, content_type, body = post(url, image, kind)  # the default: the mask
            assert (status, content_type) == (200, "image/png")
            mask = Image.open(io.BytesIO(body))
            assert mask.mode == "P" and mask.size == (w, h)
            written = Image.open(out.parent / rows[name]["mask"])
            assert np.array_equal(np.asarray(mask), np.asarray(written))
            status, content_type, body = post(
                url, image, "application/x-image", "application/x-npy"
            )
            assert (status, content_type) == (200, "application/x-npy")
            probabilities = np.load(io.BytesIO(body), allow_pickle=False)
            assert probabilities.shape == (h, w, 3) and probabilities.dtype == np.float16
            assert np.array_equal(probabilities, np.load(out.parent / rows[name]["probabilities"]))
        status, _, body = post(url, b"GIF89a broken", "image/png")
        assert status == 400 and body.decode().startswith("request body: cannot decode image")
        assert post(url, (images / "odd.jpg").read_bytes(), "image/jpeg")[0] == 200
        status, _, body = post(
            url, (images / "odd.jpg").read_bytes(), "image/jpeg", "application/json"
        )
        assert status == 406
        assert body.decode().strip() == (
            "Accept application/json cannot be served; allowed: image/png, application/x-npy"
        )
