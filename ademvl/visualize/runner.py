"""The real sweep runner: train one recipe setting, then evaluate its adapter.

Imported lazily (only when a sweep runs without an injected runner), so the
sweep logic and its tests do not depend on the trainer or the evaluator.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..data import SPECS

# The figure's y axis: which evaluator metric counts as "accuracy" per dataset (its registry entry's headline).
ACCURACY_KEY = {name: spec.accuracy_key for name, spec in SPECS.items() if spec.accuracy_key}


def flatten_metrics(metrics: dict, prefix: str = "") -> dict:
    """Nested evaluator metrics → one level of `a/b` keys, numbers only (for JSON and plotting)."""
    flat = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, f"{name}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = value
    return flat


def run_setting(recipe_name: str, overrides: dict, output_dir: Path, eval_split: str = "test",
                eval_limit: int | None = None, batch_size: int = 8) -> dict:
    """Train `recipe_name` with dotted-key `overrides` in `output_dir`, evaluate on `eval_split`.

    A training interrupted earlier in the same directory is resumed, not restarted.
    Returns the evaluator's metrics, flattened, plus `accuracy` where the dataset has one.
    """
    try:
        from ..evaluation import evaluate, load_for_eval
        from ..training import latest_checkpoint, load_recipe, train
        from ..training.data import load_examples
    except ImportError as error:
        raise ImportError(f"ademvl sweep needs the trainer and evaluator: {error}") from error

    output_dir = Path(output_dir)
    recipe = load_recipe(recipe_name, overrides)
    resume = latest_checkpoint(output_dir) is not None
    result = train(recipe, resume=resume, output_dir=output_dir, progress=False)
    if not result.main_process:
        return {}
    data = dataclasses.replace(recipe.data, split=eval_split, limit=eval_limit)
    examples, _ = load_examples(data)
    model, tokenizer, processor = load_for_eval(result.adapter_dir, tokenizer=recipe.model.tokenizer,
                                                image_processor=recipe.model.image_processor)
    evaluation = evaluate(model, tokenizer, processor, data.dataset, examples, batch_size=batch_size,
                          progress=False, output=output_dir / f"eval_{data.dataset}_{eval_split}.json",
                          resume=True, settings={"adapter": str(result.adapter_dir)})
    metrics = flatten_metrics(evaluation["metrics"])
    if data.dataset in ACCURACY_KEY and ACCURACY_KEY[data.dataset] in metrics:
        metrics["accuracy"] = metrics[ACCURACY_KEY[data.dataset]]
    return metrics
