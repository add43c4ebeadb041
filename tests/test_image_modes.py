"""16-bit, 32-bit and float greyscale images keep their content: scaled by their range, not clipped at 255."""
import numpy as np
import pytest
from PIL import Image

from ademvl.data import check_image, load_image

WIDTH = 256
EXPECTED = np.arange(WIDTH)  # the gradient's 8-bit values: column x holds x/255 of the full range


def gradient(kind: str) -> Image.Image:
    fraction = np.tile(np.linspace(0.0, 1.0, WIDTH), (4, 1))
    if kind == "I;16":
        return Image.fromarray(np.rint(fraction * 65535).astype(np.uint16))
    if kind == "I":
        return Image.fromarray(np.rint(fraction * 65535).astype(np.int32))
    if kind == "F":
        return Image.fromarray(fraction.astype(np.float32))
    if kind == "F-wide":  # float data outside 0-1: its own minimum to maximum
        return Image.fromarray((fraction * 4000 - 1000).astype(np.float32))
    raise ValueError(kind)


@pytest.mark.parametrize("kind,suffix", [("I;16", "png"), ("I", "tiff"), ("F", "tiff"), ("F-wide", "tiff")])
def test_wide_greyscale_keeps_its_gradient(kind, suffix, tmp_path):
    path = tmp_path / f"gradient.{suffix}"
    gradient(kind).save(path)
    check_image(str(path), decode=True)
    rgb = np.asarray(load_image(str(path))).astype(int)
    assert rgb.shape == (4, WIDTH, 3)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    assert np.abs(rgb[0, :, 0] - EXPECTED).max() <= 1, rgb[0, :, 0]
    assert (rgb == 255).mean() < 0.01  # PIL's own convert("RGB") turned 99.6% of it white


def test_png_16bit_opens_as_16bit(tmp_path):
    """The case from the report: a 0-65535 PNG, as PIL opens it."""
    path = tmp_path / "g.png"
    gradient("I;16").save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")
        assert (np.asarray(im.convert("RGB")) == 255).mean() > 0.99  # what PIL alone gives
    assert (np.asarray(load_image(str(path))) == 255).mean() < 0.01
