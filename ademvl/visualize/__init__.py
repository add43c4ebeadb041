"""The paper's figures: per-scale fusion maps (Fig. 3) and hyperparameter sweeps (Fig. 2).

Drawing is kept in pure functions (arrays in, PNG out) so that it is tested
without a model; the model-facing parts only produce those arrays.
"""
from .capture import capture_fusion_scores, kept_mask, select_maps, split_by_scales
from .fusion_map import FigureInfo, draw_fusion_map
from .sweep import SweepResult, plot_sweep, run_sweep, sweep_settings

__all__ = [
    "capture_fusion_scores", "kept_mask", "select_maps", "split_by_scales",
    "FigureInfo", "draw_fusion_map",
    "SweepResult", "plot_sweep", "run_sweep", "sweep_settings",
]
