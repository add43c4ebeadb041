"""draw_fusion_map: exact PNG size, planted hot cell where it belongs, dropped cells hatched."""
import numpy as np
import pytest
from PIL import Image

from ademvl.visualize import draw_fusion_map


def cell_pixels(png: np.ndarray, box, side: int, row: int, col: int) -> np.ndarray:
    """The inner half of one grid cell of a panel, as (N, 3) RGB pixels."""
    left, top, right, bottom = box
    w, h = (right - left) / side, (bottom - top) / side
    x0, x1 = int(left + (col + 0.25) * w), int(left + (col + 0.75) * w)
    y0, y1 = int(top + (row + 0.25) * h), int(top + (row + 0.75) * h)
    return png[y0:y1, x0:x1, :3].reshape(-1, 3).astype(int)


def heat(png, box, side):
    """Per-cell mean red channel: on a black image, inferno's red grows with the score, cyan has none."""
    return np.array([[cell_pixels(png, box, side, r, c)[:, 0].mean() for c in range(side)] for r in range(side)])


def cyan_fraction(png, box, side, row, col):
    px = cell_pixels(png, box, side, row, col)
    return float(((px[:, 0] < 100) & (px[:, 1] > 150) & (px[:, 2] > 150)).mean())


@pytest.mark.parametrize("n_scales, panel_inches, dpi", [(1, 2.0, 50), (3, 2.5, 80)])
def test_png_has_the_promised_pixel_size(tmp_path, n_scales, panel_inches, dpi):
    sides = [4, 2, 1][:n_scales]
    scores = [np.random.default_rng(0).random((s, s)) for s in sides]
    kept = [np.ones((s, s), bool) for s in sides]
    info = draw_fusion_map(Image.new("RGB", (40, 40)), scores, kept, [f"s{s}" for s in sides], tmp_path / "m.png",
                           panel_inches=panel_inches, dpi=dpi)
    expected = (round(panel_inches * (n_scales + 1.4) * dpi), round(panel_inches * 1.25 * dpi))
    assert info.size == expected
    assert Image.open(info.path).size == expected
    assert len(info.panel_boxes) == n_scales + 1


@pytest.mark.parametrize("image_size", [(64, 64), (96, 48)])
def test_planted_hot_cell_is_hottest_and_dropped_cells_are_hatched(tmp_path, image_size):
    rng = np.random.default_rng(1)
    fine, coarse = rng.random((4, 4)), rng.random((2, 2))
    fine[2, 1] = 10.0   # planted: the feature at row 2, column 1 of the 4×4 scale dominates
    coarse[0, 1] = 8.0
    kept_fine = np.ones((4, 4), bool)
    kept_fine[0, 0] = kept_fine[3, 3] = False
    kept_coarse = np.array([[1.0, 1.0], [0.4, 0.6]])  # averaged masks: below 0.5 counts as dropped
    info = draw_fusion_map(Image.new("RGB", image_size), [fine, coarse], [kept_fine, kept_coarse],
                           ["fine", "coarse"], tmp_path / "m.png")
    png = np.asarray(Image.open(info.path).convert("RGB"))

    fine_heat = heat(png, info.panel_boxes[1], 4)
    assert np.unravel_index(fine_heat.argmax(), fine_heat.shape) == (2, 1)
    coarse_heat = heat(png, info.panel_boxes[2], 2)
    assert np.unravel_index(coarse_heat.argmax(), coarse_heat.shape) == (0, 1)

    for row in range(4):
        for col in range(4):
            fraction = cyan_fraction(png, info.panel_boxes[1], 4, row, col)
            if kept_fine[row, col]:
                assert fraction == 0.0, (row, col)
            else:
                assert fraction > 0.1, (row, col)
    assert cyan_fraction(png, info.panel_boxes[2], 2, 1, 0) > 0.1
    assert cyan_fraction(png, info.panel_boxes[2], 2, 1, 1) == 0.0
    # The original-image panel carries no overlay at all.
    assert png[info.panel_boxes[0][1] + 5:info.panel_boxes[0][3] - 5, info.panel_boxes[0][0] + 5].max() == 0


def test_flat_score_vectors_are_accepted_as_square_grids(tmp_path):
    scores = np.zeros(9)
    scores[5] = 1.0  # row 1, column 2 of a 3×3 grid (row-major)
    info = draw_fusion_map(Image.new("RGB", (30, 30)), [scores], [np.ones(9, bool)], ["flat"], tmp_path / "f.png")
    png = np.asarray(Image.open(info.path).convert("RGB"))
    h = heat(png, info.panel_boxes[1], 3)
    assert np.unravel_index(h.argmax(), h.shape) == (1, 2)


def test_bad_inputs_fail_with_a_clear_message(tmp_path):
    image = Image.new("RGB", (8, 8))
    with pytest.raises(ValueError, match="one of each per scale"):
        draw_fusion_map(image, [np.zeros((2, 2))], [np.ones((2, 2))], [], tmp_path / "x.png")
    with pytest.raises(ValueError, match="not a square grid"):
        draw_fusion_map(image, [np.zeros(5)], [np.ones(5)], ["t"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="differ in shape"):
        draw_fusion_map(image, [np.zeros((2, 2))], [np.ones((3, 3))], ["t"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
