"""`image_url` parts → PIL images: base64 `data:` URLs only, size-checked before decoding.

The server runs offline (as the demo does), so http(s) URLs are refused with one
line instead of timing out. Width × height is read from the header first, so a
decompression bomb is refused without allocating its pixels.
"""
from __future__ import annotations

import base64
import binascii
import io
import re

from PIL import Image

from ..data.images import ImageError, to_rgb
from .errors import RequestError

DEFAULT_MAX_IMAGE_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096
READABLE = "PNG, JPEG, GIF, WebP, BMP, TIFF, ..."  # the common formats Pillow decodes, named in the refusal


def decode_image_url(url: str, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
                     max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, param: str = "image_url") -> Image.Image:
    """The RGB image in a `data:image/...;base64,...` URL, or a `RequestError` naming what is wrong."""
    if url.startswith(("http://", "https://")):
        raise RequestError(f"{param}: http(s) image URLs are not fetched (this server is offline); "
                           "send the image inline as a data:image/...;base64 URL", param, "image_url_not_supported")
    if not url.startswith("data:") or "," not in url:
        raise RequestError(f"{param}: expected a data:image/...;base64,... URL, got {url[:40]!r}",
                           param, "invalid_image_url")
    header, payload = url[5:].split(",", 1)
    if not header.endswith(";base64"):
        raise RequestError(f"{param}: the data URL must be base64-encoded (';base64,')", param, "invalid_image_url")
    if len(payload) * 3 // 4 > max_bytes:
        raise RequestError(f"{param}: image too large: about {len(payload) * 3 // 4} bytes, the limit is {max_bytes}",
                           param, "image_too_large")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as error:
        raise RequestError(f"{param}: invalid base64 data: {error}", param, "invalid_image") from error
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise RequestError(f"{param}: image too large: {width}x{height} pixels, the limit is {max_pixels}",
                                   param, "image_too_large")
            return to_rgb(image)
    except RequestError:
        raise
    except ImageError as error:  # a shape no processor can resize (`check_shape`)
        raise RequestError(f"{param}: {error}", param, "invalid_image") from error
    except (OSError, SyntaxError, ValueError, MemoryError, Image.DecompressionBombError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        first = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", first)  # PIL names its in-memory file
        # Worded for the person who chose the file (the web page shows it as is); PIL's reason only when it
        # adds to the sentence, e.g. a truncated file.
        reason = "" if first.startswith("cannot identify image file") else f" ({first})"
        raise RequestError(f"{param}: that file is not an image we can read ({READABLE}): corrupt or "
                           f"unsupported image{reason}", param, "invalid_image") from error
