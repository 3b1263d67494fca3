"""Caps on one input's size: an image that decodes to far more pixels than it has bytes is
refused from its header, before any decoding or model call."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tasks import limits
from tasks.errors import InputError
from tasks.inference import predict_images
from tasks.settings import setting


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (width, height)).save(out, "PNG")
    return out.getvalue()


class CountingModel:
    """Stands in for a loaded model: records what reached the network."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def predict(self, blobs: list[bytes]) -> np.ndarray:
        self.seen += [len(b) for b in blobs]
        return np.full((len(blobs), 2), 0.5)


def test_a_decompression_bomb_is_refused_by_name_before_prediction():
    bomb = png(12_000, 12_000)  # 144 Mpixels in a few hundred kB
    assert len(bomb) < limits.MAX_IMAGE_BYTES
    model = CountingModel()
    with pytest.raises(InputError) as refused:
        list(predict_images(model, [("ok.png", png(16, 16)), ("bomb.png", bomb)]))
    assert str(refused.value) == (
        f"bomb.png: 12000x12000 = 144000000 pixels; allowed: at most {limits.MAX_IMAGE_PIXELS} "
        "(VISION_PIPELINES_MAX_IMAGE_PIXELS)"
    )
    assert model.seen == []  # the batch never reached the model


def test_pillow_refusal_of_huge_images_is_reported_as_the_cap():
    with pytest.raises(InputError, match=r"huge.png: over \d+ pixels; allowed: at most"):
        limits.check_encoded_image("huge.png", png(20_000, 20_000))


def test_byte_cap_and_images_within_the_caps(monkeypatch):
    monkeypatch.setattr(limits, "MAX_IMAGE_BYTES", 100)
    with pytest.raises(InputError, match=r"big.png: \d+ bytes; allowed: at most 100 bytes"):
        limits.check_encoded_image("big.png", png(64, 64) + b"\0" * 100)
    monkeypatch.setattr(limits, "MAX_IMAGE_BYTES", 10_000)
    limits.check_encoded_image("small.png", png(64, 64))
    limits.check_encoded_image("not-an-image.txt", b"hello")  # left to the decoder's message


def test_a_setting_that_is_not_a_number_is_named(monkeypatch):
    monkeypatch.setenv("VISION_PIPELINES_MAX_BATCH_SIZE", "lots")
    with pytest.raises(InputError, match="VISION_PIPELINES_MAX_BATCH_SIZE='lots'"):
        setting("VISION_PIPELINES_MAX_BATCH_SIZE", 4096)
