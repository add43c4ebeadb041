import pytest
from PIL import Image

from ademvl.data import ImageError, VLExample, filter_loadable, load_image


def test_load_image_returns_rgb(tmp_path, png_writer):
    p = tmp_path / "gray.png"
    Image.new("L", (5, 7), 128).save(p)
    im = load_image(p)
    assert im.mode == "RGB" and im.size == (5, 7)
    assert im.getpixel((0, 0)) == (128, 128, 128)


def test_palette_with_transparency_becomes_rgb(tmp_path):
    p = tmp_path / "pal.png"
    im = Image.new("P", (4, 4), 0)
    im.putpalette([10, 20, 30] + [0, 0, 0] * 255)
    im.info["transparency"] = 1
    im.save(p, transparency=1)
    out = load_image(p)
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (10, 20, 30)


def test_missing_image_names_file_and_record(tmp_path):
    p = tmp_path / "nope.png"
    with pytest.raises(ImageError) as ei:
        load_image(p, record_id="pid42")
    msg = str(ei.value)
    assert "not found" in msg and "nope.png" in msg and "pid42" in msg
    assert "\n" not in msg
    assert isinstance(ei.value, ValueError)


def test_corrupt_image_names_file_and_record(tmp_path, corrupt_png_writer):
    p = corrupt_png_writer(tmp_path / "bad.png")
    with pytest.raises(ImageError) as ei:
        load_image(p, record_id="rec-7")
    msg = str(ei.value)
    assert "corrupt" in msg and "bad.png" in msg and "rec-7" in msg and "\n" not in msg


def test_not_an_image_at_all(tmp_path):
    p = tmp_path / "text.png"
    p.write_text("hello, not a png")
    with pytest.raises(ImageError, match="text.png"):
        load_image(p, "x")


def _examples(tmp_path, png_writer, corrupt_png_writer):
    good = png_writer(tmp_path / "good.png")
    bad = corrupt_png_writer(tmp_path / "bad.png")
    return [
        VLExample("a", "p", "x", str(good)),
        VLExample("b", "p", "x", str(bad)),
        VLExample("c", "p", "x", None),  # text-only: always kept
        VLExample("d", "p", "x", str(tmp_path / "missing.png")),
        VLExample("e", "p", "x", str(good)),
    ]


@pytest.mark.parametrize("decode", [False, True])
def test_filter_skip_and_count(tmp_path, png_writer, corrupt_png_writer, decode):
    exs = _examples(tmp_path, png_writer, corrupt_png_writer)
    kept, n_skipped = filter_loadable(exs, skip_bad=True, decode=decode)
    assert [e.id for e in kept] == ["a", "c", "e"]
    assert n_skipped == 2


def test_filter_without_skip_raises_first_bad(tmp_path, png_writer, corrupt_png_writer):
    exs = _examples(tmp_path, png_writer, corrupt_png_writer)
    with pytest.raises(ImageError, match=r"bad\.png.*record b"):
        filter_loadable(exs, skip_bad=False)
    kept, n = filter_loadable([exs[0], exs[2]], skip_bad=False)
    assert n == 0 and len(kept) == 2
