"""Pack a `.lst` and its images into `.rec` + `.idx`, with im2rec's encoding options, in Pillow."""

from __future__ import annotations

import io
import os
import sys
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import ExifTags, Image, ImageOps

from tasks.atomic import atomic_path
from tasks.data.lst import LstEntry
from tasks.data.lst_validation import DECODE_ERRORS
from tasks.data.recordio_format import ImageHeader, RecordIOWriter, pack
from tasks.errors import InputError
from tasks.progress import Progress


class PackError(InputError):
    """An image or list entry that cannot be packed; the message names the file."""


@dataclass(frozen=True)
class PackOptions:
    """im2rec's encoding flags, with its defaults."""

    pass_through: bool = False
    resize: int = 0
    center_crop: bool = False
    quality: int = 95
    encoding: str = ".jpg"
    color: int = 1
    pack_label: bool = False

    def __post_init__(self) -> None:
        if self.encoding not in (".jpg", ".png"):
            raise PackError(f"encoding must be '.jpg' or '.png', got {self.encoding!r}")
        if self.color not in (-1, 0, 1):
            raise PackError(
                f"color must be 1 (colour), 0 (grey) or -1 (unchanged), got {self.color}"
            )
        if self.resize < 0:
            raise PackError(f"resize must be 0 (keep size) or a positive size, got {self.resize}")
        # PNG levels above 9 act as 9, as in OpenCV: im2rec's default 95 works with .png too.
        low = 1 if self.encoding == ".jpg" else 0
        if not low <= self.quality <= 100:
            raise PackError(
                f"quality for {self.encoding} must be in [{low}, 100], got {self.quality}"
            )


def resolve_image_path(root: Path, entry: LstEntry, *, source: str) -> Path:
    """The image's path under `root`; absolute paths and paths escaping the root are refused."""
    rel = PurePosixPath(entry.path)
    if rel.is_absolute() or ".." in rel.parts or Path(entry.path).is_absolute():
        raise PackError(
            f"{source}: image path {entry.path!r} (index {entry.index}) must be relative to the "
            "image root and stay inside it (no absolute paths, no '..')"
        )
    return root / rel


def _target_size(width: int, height: int, resize: int) -> tuple[int, int]:
    # im2rec's integer arithmetic: the shorter edge becomes `resize`.
    if height > width:
        return resize, height * resize // width
    return width * resize // height, resize


def encode_image(path: Path, options: PackOptions) -> bytes:
    """The image bytes to store: the file as is (pass-through) or re-encoded per `options`."""
    if options.pass_through:
        return path.read_bytes()
    try:
        with Image.open(path) as img:
            if img.width * img.height > Image.MAX_IMAGE_PIXELS:  # Pillow only warns up to 2x
                raise Image.DecompressionBombError(
                    f"{img.width}x{img.height} pixels exceeds the limit of "
                    f"{Image.MAX_IMAGE_PIXELS} (Image.MAX_IMAGE_PIXELS)"
                )
            # Sizes as displayed: EXIF-rotated photos are turned upright, as OpenCV does.
            orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
            turned = orientation in (5, 6, 7, 8)
            size = img.size[::-1] if turned else img.size
            if options.center_crop:
                size = (min(size), min(size))
            target = _target_size(*size, options.resize) if options.resize else None
            if target and options.color != -1 and img.format == "JPEG":
                # DCT-scaled decoding: far faster when the target is much smaller.
                img.draft("RGB" if options.color else "L", target[::-1] if turned else target)
            img.load()
            if orientation != 1:
                img = ImageOps.exif_transpose(img)
            img = _convert(img, options.color)
    except FileNotFoundError:
        raise
    except DECODE_ERRORS as e:
        raise PackError(f"{path}: cannot decode image: {e}") from e
    if options.center_crop:
        w, h = img.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
    if target:
        img = img.resize(target, Image.Resampling.BILINEAR)
    out = io.BytesIO()
    if options.encoding == ".jpg":
        if img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
        img.save(out, format="JPEG", quality=options.quality)
    else:
        img.save(out, format="PNG", compress_level=min(options.quality, 9))
    return out.getvalue()


def _convert(img: Image.Image, color: int) -> Image.Image:
    if color == 1:
        return img if img.mode == "RGB" else img.convert("RGB")
    if color == 0:
        return img if img.mode == "L" else img.convert("L")
    return img


def record_payload(entry: LstEntry, image: bytes, options: PackOptions) -> bytes:
    """im2rec's header rule: all labels with --pack-label and several labels, else the first."""
    labels = entry.labels if options.pack_label and len(entry.labels) > 1 else entry.labels[:1]
    return pack(ImageHeader(labels, entry.index), image)


def _encode_entry(job: tuple[LstEntry, Path, PackOptions]) -> bytes | str:
    """The record payload, or the reason the image cannot be packed."""
    entry, path, options = job
    try:
        return record_payload(entry, encode_image(path, options), options)
    except FileNotFoundError:
        return f"{path}: image file not found"
    except (PackError, OSError) as e:
        return str(e) if isinstance(e, PackError) else f"{path}: cannot read image: {e}"


@contextmanager
def _image_memory_kept(blocks: int) -> Iterator[None]:
    """Pillow keeps up to `blocks` freed image blocks for the next images instead of handing
    each back to the system and faulting its pages in again (PILLOW_BLOCKS_MAX, 0 by default):
    the pack's system time halves, 8% of its wall time for 1600x1200 photos."""
    previous = Image.core.get_blocks_max()
    Image.core.set_blocks_max(max(previous, blocks))
    try:
        yield
    finally:
        Image.core.set_blocks_max(previous)


@dataclass(frozen=True)
class PackResult:
    records: int
    skipped: list[str]
    """One message per image left out (only with skip_bad)."""


def pack_lst(
    entries: Sequence[LstEntry],
    image_root: str | os.PathLike,
    rec_path: str | os.PathLike,
    idx_path: str | os.PathLike,
    *,
    options: PackOptions = PackOptions(),
    num_workers: int = 1,
    skip_bad: bool = False,
    source: str = ".lst",
) -> PackResult:
    """Write every entry's record in list order, atomically (temporary names, then renames).

    An image that cannot be read or decoded fails the whole pack with its list line, or is left out
    and reported when `skip_bad` is set."""
    root = Path(image_root)
    jobs = [(e, resolve_image_path(root, e, source=source), options) for e in entries]
    rec_path, idx_path = Path(rec_path), Path(idx_path)
    progress = Progress(len(jobs), desc=f"packing {rec_path.name}", unit="images")
    skipped: list[str] = []
    with (
        # encode_image refuses what is over Pillow's cap itself; its warning would say it twice.
        warnings.catch_warnings(),
        _image_memory_kept(2 * max(1, num_workers)),
        atomic_path(rec_path) as tmp_rec,
        atomic_path(idx_path) as tmp_idx,
        RecordIOWriter(tmp_rec, tmp_idx) as writer,
    ):
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        for (entry, _, _), payload in zip(jobs, _payloads(jobs, num_workers), strict=True):
            progress.update()
            if isinstance(payload, bytes):
                writer.write(payload, key=entry.index)
                continue
            where = f"{source}, line {entry.line}" if entry.line else source
            if not skip_bad:
                raise PackError(f"{where}: {payload}")
            skipped.append(f"{where}: {payload}")
            print(f"skipped {where}: {payload}", file=sys.stderr, flush=True)
    progress.close()
    return PackResult(len(jobs) - len(skipped), skipped)


def _payloads(
    jobs: list[tuple[LstEntry, Path, PackOptions]], num_workers: int
) -> Iterator[bytes | str]:
    """Each job's payload in list order. Threads, not processes: Pillow decodes, resizes and
    encodes without the GIL, so threads scale as processes do, without a process start per
    worker or a copy of every payload between processes (the profile in docs/benchmarks.md);
    at most a few images per thread are held ahead of the writer, so memory stays flat."""
    if num_workers <= 1:
        yield from map(_encode_entry, jobs)
        return
    ahead: deque[Future] = deque()
    with ThreadPoolExecutor(num_workers, thread_name_prefix="pack") as pool:
        for job in jobs:
            ahead.append(pool.submit(_encode_entry, job))
            if len(ahead) >= 4 * num_workers:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()
