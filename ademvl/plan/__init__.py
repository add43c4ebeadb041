"""`ademvl plan`: will a training run fit in GPU memory? Weights and optimizer state from the
meta-device model, activations from a per-token, per-layer formula calibrated on counted
saved-tensor bytes (see `activations.py`), and the switches that would make it fit."""
from .estimate import Estimate, PlanInput, plan, suggest
from .report import format_plan, plan_json
from .shape import ModelShape, shape_for

__all__ = ["Estimate", "PlanInput", "plan", "suggest", "format_plan", "plan_json", "ModelShape", "shape_for"]
