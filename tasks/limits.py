"""Caps on what one input can make a step allocate, set by the deployment (environment).

Whoever triggers a run or sends an image chooses its sizes; without caps a 3x60000x60000
`image_shape`, a batch of a million or a small PNG that decodes to 10 gigapixels takes the
machine down instead of getting a sentence. Pillow's own decompression-bomb threshold follows
the pixel cap, so every Pillow decode in data preparation honours it too.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from tasks.errors import InputError
from tasks.settings import setting

MAX_IMAGE_SIDE = setting("VISION_PIPELINES_MAX_IMAGE_SIDE")
"""Largest network input side (`image_shape`, crop sizes), in pixels."""
MAX_BATCH_SIZE = setting("VISION_PIPELINES_MAX_BATCH_SIZE")
MAX_IMAGE_PIXELS = setting("VISION_PIPELINES_MAX_IMAGE_PIXELS")
"""Decoded pixels (width x height) of one input image; default: Pillow's bomb threshold."""
MAX_IMAGE_BYTES = setting("VISION_PIPELINES_MAX_IMAGE_BYTES")
"""Encoded bytes of one image sent for prediction."""
MAX_EPOCHS = setting("VISION_PIPELINES_MAX_EPOCHS")
"""Most training epochs a run may ask for (a run holds a GPU for as long as it trains)."""
MAX_CLASSES = setting("VISION_PIPELINES_MAX_CLASSES")
"""Largest number of classes (a class index sizes per-class lists on the Airflow worker)."""
MAX_MANIFEST_LINE_BYTES = setting("VISION_PIPELINES_MAX_MANIFEST_LINE_BYTES")
"""Longest line of an augmented manifest (one JSON object per line)."""

Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
CACHE_BYTES_ENV = "VISION_PIPELINES_CACHE_BYTES"


def fits_in_cache(nbytes: int) -> bool:
    """Whether decoded training data of `nbytes` may stay in memory across epochs
    ($VISION_PIPELINES_CACHE_BYTES, default 2 GiB; read when asked)."""
    return nbytes <= setting(CACHE_BYTES_ENV)


def check_encoded_image(
    name: str,
    blob: bytes,
    *,
    max_pixels: int = MAX_IMAGE_PIXELS,
    setting_name: str = "VISION_PIPELINES_MAX_IMAGE_PIXELS",
) -> int:
    """Refuse an image over the byte cap or `max_pixels` from its header, before it is decoded;
    return its pixel count (0 for an unreadable header, left to the decoder's own message)."""
    if len(blob) > MAX_IMAGE_BYTES:
        raise InputError(
            f"{name}: {len(blob)} bytes; allowed: at most {MAX_IMAGE_BYTES} bytes an image "
            "(VISION_PIPELINES_MAX_IMAGE_BYTES)"
        )
    allowed = f"allowed: at most {max_pixels} ({setting_name})"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(blob)) as img:
                width, height = img.size
    except Image.DecompressionBombError:  # Pillow refuses twice its cap before giving a size
        raise InputError(f"{name}: over {2 * MAX_IMAGE_PIXELS} pixels; {allowed}") from None
    except (UnidentifiedImageError, OSError):
        return 0
    if width * height > max_pixels:
        raise InputError(f"{name}: {width}x{height} = {width * height} pixels; {allowed}")
    return width * height
