"""Training: `train(load_recipe("scienceqa-7b", ["train.epochs=1"]))` → `TrainResult`.

See `ademvl.training.trainer` for the run (`TrainingRun`: prepare → setup → fit → finish), `schedule` for the paper's lr rule,
`state` for checkpoints and resuming, `data` for the resumable data order.
"""
from ..recipes import Recipe, RecipeError, load_recipe
from .schedule import lr_at, scaled_lr
from .state import latest_checkpoint
from .errors import NonFiniteLossError, NonFiniteWeightsError, TrainingError
from ..backbones.aliases import resolve_backbones
from ..model_builder import build_model
from .trainer import TrainResult, train

__all__ = ["train", "TrainResult", "TrainingError", "NonFiniteLossError", "NonFiniteWeightsError", "Recipe", "RecipeError", "load_recipe",
           "build_model", "resolve_backbones", "scaled_lr", "lr_at", "latest_checkpoint"]
