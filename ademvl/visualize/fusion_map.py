"""Draw Fig. 3: the image, then one heat map per scale of the multiscale prompt.

Each scale's side×side grid of scores is stretched over the image (nearest
cells, so every visual feature stays a visible square); cells the adaptive
drop removed are left unpainted and hatched. Figure geometry is fixed (no
tight bbox), so the PNG is exactly `figsize × dpi` pixels and each panel's
pixel box is known: `FigureInfo` reports both, which the tests rely on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes

CMAP = "inferno"          # lightness grows with the score: the hottest cell is the brightest
DROP_COLOR = "#00ffff"    # cyan never occurs in inferno, so dropped-cell hatching is unambiguous
HEAT_ALPHA = 0.6


@dataclass
class FigureInfo:
    """What a drawing function wrote: the file, its pixel size and where each panel lies."""

    path: Path
    size: tuple[int, int]                    # (width, height) in pixels
    panel_boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # (left, top, right, bottom) px
    data: dict = field(default_factory=dict)  # what was plotted, for checks without reading pixels


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _as_grid(values: np.ndarray, what: str, index: int) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        side = int(round(np.sqrt(values.size)))
        if side * side != values.size:
            raise ValueError(f"{what} {index} has {values.size} values, not a square grid")
        values = values.reshape(side, side)
    if values.ndim != 2 or values.shape[0] != values.shape[1]:
        raise ValueError(f"{what} {index} must be a square grid (side, side), got shape {values.shape}")
    return values


def _box(ax, fig, height_px: int) -> tuple[int, int, int, int]:
    """An axes' drawn area in PNG pixels (origin top-left)."""
    extent = ax.get_window_extent(fig.canvas.get_renderer())
    return (int(round(extent.x0)), int(round(height_px - extent.y1)),
            int(round(extent.x1)), int(round(height_px - extent.y0)))


def draw_fusion_map(
    image,
    scores_by_scale: list[np.ndarray],
    kept_by_scale: list[np.ndarray],
    titles: list[str],
    path: str | Path,
    panel_inches: float = 3.0,
    dpi: int = 100,
    suptitle: str | None = None,
) -> FigureInfo:
    """Save `original | scale 1 | scale 2 | … | colorbar` as a PNG.

    Args:
        image: a PIL image (the view the vision tower saw, ideally).
        scores_by_scale: one (side, side) or (side²,) array of scores per scale.
        kept_by_scale: same shapes; bool, or the fraction of averaged tokens/layers
            that kept the feature — a cell is hatched as dropped when it is below 0.5.
        titles: one title per scale panel.
        path: the PNG to write (atomically).
    Returns: FigureInfo with size = (round(panel_inches·(n+1.4)·dpi), round(panel_inches·1.25·dpi)).
    """
    plt = _pyplot()
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    if not scores_by_scale:
        raise ValueError("draw_fusion_map needs at least one scale")
    if not (len(scores_by_scale) == len(kept_by_scale) == len(titles)):
        raise ValueError(
            f"got {len(scores_by_scale)} score grids, {len(kept_by_scale)} kept grids and {len(titles)} titles: "
            "give one of each per scale"
        )
    scores = [_as_grid(s, "scores of scale", i) for i, s in enumerate(scores_by_scale)]
    kept = [_as_grid(k, "kept mask of scale", i) for i, k in enumerate(kept_by_scale)]
    for i, (s, k) in enumerate(zip(scores, kept)):
        if s.shape != k.shape:
            raise ValueError(f"scale {i}: scores {s.shape} and kept mask {k.shape} differ in shape")
    rgb = np.asarray(image.convert("RGB"))
    height_img, width_img = rgb.shape[:2]

    panels = len(scores) + 1
    width_in, height_in = panel_inches * (panels + 0.4), panel_inches * 1.25
    width_px, height_px = int(round(width_in * dpi)), int(round(height_in * dpi))
    fig = plt.figure(figsize=(width_in, height_in), dpi=dpi)
    norm = Normalize(vmin=min(float(s.min()) for s in scores), vmax=max(float(s.max()) for s in scores))
    if norm.vmin == norm.vmax:
        norm = Normalize(vmin=norm.vmin - 0.5, vmax=norm.vmax + 0.5)
    margin, panel_w = 0.05 / (panels + 0.4), 0.9 / (panels + 0.4)
    axes = []
    extent = (0, width_img, height_img, 0)
    heat = None
    try:
        with plt.rc_context({"hatch.linewidth": 2.0, "hatch.color": DROP_COLOR}):
            for p in range(panels):
                ax = fig.add_axes((p / (panels + 0.4) + margin, 0.04, panel_w, 0.8))
                ax.imshow(rgb, extent=extent, interpolation="nearest")
                ax.set_xticks([]), ax.set_yticks([])
                axes.append(ax)
                if p == 0:
                    ax.set_title("image", fontsize=9)
                    continue
                grid, keep = scores[p - 1], kept[p - 1] >= 0.5
                heat = ax.imshow(np.ma.masked_where(~keep, grid), extent=extent, cmap=CMAP, norm=norm,
                                 alpha=HEAT_ALPHA, interpolation="nearest")
                side = grid.shape[0]
                cell_w, cell_h = width_img / side, height_img / side
                for r, c in zip(*np.nonzero(~keep)):
                    ax.add_patch(Rectangle((c * cell_w, r * cell_h), cell_w, cell_h, fill=False,
                                           hatch="xx", edgecolor=DROP_COLOR, linewidth=0))
                ax.set_xlim(0, width_img), ax.set_ylim(height_img, 0)
                ax.set_title(titles[p - 1], fontsize=8)
            cax = fig.add_axes(((panels + 0.05) / (panels + 0.4), 0.04, 0.08 / (panels + 0.4), 0.8))
            fig.colorbar(heat, cax=cax, label="score silu(n)·Kᵀ")
            if suptitle:
                fig.suptitle(suptitle, fontsize=9)
            fig.canvas.draw()
            boxes = [_box(ax, fig, height_px) for ax in axes]
            path = Path(path)
            atomic_write_bytes(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    finally:
        plt.close(fig)
    return FigureInfo(path=path, size=(width_px, height_px), panel_boxes=boxes,
                      data={"scores": scores, "kept": kept, "norm": (norm.vmin, norm.vmax)})
