"""`ademvl bench`: FLOPs on the meta device and interleaved wall-clock of every method."""
from .flops import (PAPER_TFLOPS_7B, analytic_fusion_flops, analytic_layer_flops, analytic_projector_backward,
                    count_flops, flops_table, fusion_expectation, model_flops)
from .meta import assume_all_true
from .timing import QUICK, SmallConfig, wall_clock

__all__ = ["PAPER_TFLOPS_7B", "analytic_fusion_flops", "analytic_layer_flops", "analytic_projector_backward",
           "count_flops", "flops_table", "fusion_expectation", "model_flops", "assume_all_true", "QUICK",
           "SmallConfig", "wall_clock"]
