"""Training: `train(load_recipe("scienceqa-7b", ["train.epochs=1"]))` → `TrainResult`.

See `ademvl.training.trainer` for the loop, `schedule` for the paper's lr rule,
`state` for checkpoints and resuming, `data` for the resumable data order.
"""
from ..recipes import Recipe, RecipeError, load_recipe
from .schedule import lr_at, scaled_lr
from .state import latest_checkpoint
from .errors import NonFiniteLossError, NonFiniteWeightsError, TrainingError
from .trainer import TrainResult, build_model, resolve_backbones, train

__all__ = ["train", "TrainResult", "TrainingError", "NonFiniteLossError", "NonFiniteWeightsError", "Recipe", "RecipeError", "load_recipe",
           "build_model", "resolve_backbones", "scaled_lr", "lr_at", "latest_checkpoint"]
