"""Image files that real cameras and attackers make: a sideways-stored photo, a 1 x 16,000,000 strip."""
from __future__ import annotations

import io

from PIL import Image

ORIENTATION = 0x0112


def sideways_photo() -> tuple[bytes, Image.Image]:
    """A JPEG stored 60x20 with EXIF Orientation 6 (turn 90° clockwise to view): what a phone held upright
    writes. Returns its bytes and the upright 20x60 picture (left half red, right half blue as stored,
    so the two orientations differ)."""
    stored = Image.new("RGB", (60, 20), (220, 30, 30))
    stored.paste((30, 30, 220), (30, 0, 60, 20))
    exif = stored.getexif()
    exif[ORIENTATION] = 6
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", exif=exif, quality=95)
    data = buffer.getvalue()
    upright = Image.open(io.BytesIO(data)).convert("RGB").transpose(Image.Transpose.ROTATE_270)
    return data, upright


def strip_png() -> bytes:
    """A 1-bit PNG 1 px wide and 16,000,000 px tall (about 30 kB): under the pixel caps, but resized to a
    224-pixel short side it would be 224 x 3.6 billion pixels."""
    buffer = io.BytesIO()
    Image.new("1", (1, 16_000_000)).save(buffer, format="PNG")
    return buffer.getvalue()
