"""Image loading with errors that say which file and which record broke.

A corrupt file deep inside a 20-epoch run should fail with one readable line
(or be skipped and counted), not a bare PIL traceback. Every path (train, eval,
generate, serve) decodes through `to_rgb`, so each gets the same checks: the
shape is bounded from the header before any pixel is decoded, and photos are
turned upright by their EXIF Orientation tag.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import numpy as np
from PIL import Image, ImageOps

from .example import VLExample

logger = logging.getLogger(__name__)

__all__ = ["ImageError", "load_image", "check_image", "filter_loadable", "to_rgb", "check_shape"]

# Longest side over shortest side. Processors resize the shortest side to their input size (224/336),
# so the long side of a 1 x 16,000,000 strip would become billions of pixels (a MemoryError inside
# resizing); at 100:1 a resized image stays under 336 x 33,600 whatever the file says.
MAX_ASPECT_RATIO = 100


class ImageError(ValueError):
    """An image file is missing, unreadable or corrupt."""


def _where(path, record_id) -> str:
    return f"{path}" + (f" (record {record_id})" if record_id is not None else "")


def load_image(path, record_id=None) -> Image.Image:
    """Open and fully decode ``path`` as an RGB image.

    Raises :class:`ImageError` naming the file and ``record_id`` when the file
    is missing or cannot be decoded (truncated, not an image, ...).
    """
    if not isinstance(path, (str, os.PathLike)):  # an int would be taken for an open file descriptor
        raise ImageError(f"image must be a file path, got {type(path).__name__} {str(path)[:60]!r}"
                         + (f" (record {record_id})" if record_id is not None else ""))
    if not os.path.isfile(path):
        raise ImageError(f"image not found: {_where(path, record_id)}")
    try:
        with Image.open(path) as im:
            return to_rgb(im)
    except ImageError as e:
        raise ImageError(f"unusable image: {_where(path, record_id)}: {e}") from e
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageError(f"corrupt image: {_where(path, record_id)}: {msg}") from e


_WIDE_MODES = ("I", "F")  # 32-bit integer and float greyscale; "I;16*" are 16-bit


def to_8bit(im: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit or float greyscale image as 8-bit "L", scaled by its real range.

    PIL's own `convert("RGB")` clips these at 255, so a 0-65535 image comes out
    almost all white. The range: 0-65535 for 16-bit data ("I;16*", and "I" whose
    values fit in it, which is how PIL opens 16-bit PNGs and TIFFs), 0-1 for float
    data within it, else the image's own minimum to maximum.
    """
    values = np.asarray(im, dtype=np.float64)
    low, high = float(values.min(initial=0)), float(values.max(initial=0))
    if im.mode.startswith("I;16") or (im.mode == "I" and low >= 0 and high <= 65535):
        low, high = 0.0, 65535.0
    elif im.mode == "F" and low >= 0 and high <= 1:
        low, high = 0.0, 1.0
    elif not np.isfinite([low, high]).all():
        raise ValueError(f"image holds non-finite values ({im.mode} mode)")
    scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))  # 2-D uint8 → "L"


def check_shape(width: int, height: int) -> None:
    """Refuse, before decoding, a shape no processor can resize: an empty side or an extreme aspect ratio."""
    if width < 1 or height < 1:
        raise ImageError(f"image has no pixels ({width}x{height})")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageError(f"image shape {width}x{height} is too elongated (aspect ratio over "
                         f"{MAX_ASPECT_RATIO}:1; resizing it would need {max(width, height) // min(width, height)}x "
                         "the pixels of a square image)")


def upright(im: Image.Image) -> Image.Image:
    """The image as it is meant to be seen: a photo stored sideways with EXIF Orientation 6 is turned."""
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # an unreadable EXIF block: the pixels are still the picture as stored
        return im
    return ImageOps.exif_transpose(im) if orientation not in (None, 1) else im


def to_rgb(im: Image.Image) -> Image.Image:
    """Decode an opened image into RGB: its shape checked first (`check_shape`), turned upright by its
    EXIF orientation, palette transparency through RGBA (as PIL asks), 16/32-bit and float greyscale
    scaled by their real range (`to_8bit`)."""
    check_shape(*im.size)
    im.load()
    im = upright(im)
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in _WIDE_MODES or im.mode.startswith("I;16"):
        im = to_8bit(im)
    return im.convert("RGB")


def check_image(path, record_id=None, decode: bool = False) -> None:
    """Raise :class:`ImageError` unless ``path`` is a readable image.

    ``decode=False`` uses PIL's cheap ``verify()`` (header + chunk checksums);
    ``decode=True`` decodes the pixels, which also catches what verify misses.
    """
    if decode:
        load_image(path, record_id)
        return
    if path is None or not os.path.isfile(path):
        raise ImageError(f"image not found: {_where(path, record_id)}")
    try:
        with Image.open(path) as im:
            check_shape(*im.size)
            im.verify()
    except ImageError as e:
        raise ImageError(f"unusable image: {_where(path, record_id)}: {e}") from e
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageError(f"corrupt image: {_where(path, record_id)}: {msg}") from e


def filter_loadable(
    examples: Iterable[VLExample], skip_bad: bool, decode: bool = False
) -> tuple[list[VLExample], int]:
    """Check every image once, before training starts.

    Text-only records are always kept. With ``skip_bad=True`` records whose
    image is missing/corrupt are dropped and counted (a warning is logged);
    with ``skip_bad=False`` the first bad image raises :class:`ImageError`.
    Returns ``(kept, n_skipped)``.
    """
    kept: list[VLExample] = []
    n_skipped = 0
    for ex in examples:
        if ex.image is not None:
            try:
                check_image(ex.image, ex.id, decode=decode)
            except ImageError as e:
                if not skip_bad:
                    raise
                n_skipped += 1
                logger.warning("skipping record: %s", e)
                continue
        kept.append(ex)
    if n_skipped:
        logger.warning("skipped %d record(s) with unreadable images", n_skipped)
    return kept, n_skipped
