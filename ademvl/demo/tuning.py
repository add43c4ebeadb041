"""One run of the demo pipeline: recipe → tune (or reuse / resume) → evaluate (or reuse) → one row.

Shared by `ademvl demo` (one run per method) and `ademvl compare` (one per variant × training size ×
seed), so that every number comes from the same recipe, trainer and evaluator. A finished run is
recorded in `run_result.json` beside its adapter, with the recipe and the test questions it was scored
on: asking for the same run again costs nothing, asking for another one in its place is refused.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..atomic import atomic_write_json

RESULT_NAME = "run_result.json"
EVAL_NAME = "eval_test.json"


class DemoError(ValueError):
    """A demo run that cannot go on as asked (one line, naming what to do)."""


@dataclass
class Pipeline:
    """What every run of one invocation shares: the backbones, the tower (for sizes) and the test questions."""

    llm_dir: str
    vision_dir: str
    tower: object  # ademvl.vision.VisionTower: grid and depth set the methods' sizes
    test: list
    log: object = print
    backbones: str = ""  # backbones_digest of the two weight folders; "" where not taken

    @property
    def test_digest(self) -> str:
        return questions_digest(self.test)


def questions_digest(examples) -> str:
    """Which questions were scored (ids, in order): a run is reused only on the same ones."""
    return hashlib.sha1("\n".join(ex.id for ex in examples).encode()).hexdigest()


def backbones_digest(*folders) -> str:
    """A fingerprint of the backbones' weights (every .safetensors file of each folder, in name order).

    The tower is pretrained on the machine that first needs it, and two CPUs with other vector units
    sum its floats in another order, so the same recipe can give another tower: runs compare only on
    the same weights, which their paths alone do not tell."""
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(Path(folder).glob("*.safetensors")):
            digest.update(path.name.encode())
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 22), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


def other_backbones(label: str, run_dir: Path, digest: str) -> str | None:
    """Why `run_dir` cannot be reused here: its run was tuned on backbones with other weights (None where it
    was not, or its record predates the fingerprint)."""
    recorded = (_read(run_dir / RESULT_NAME) or {}).get("backbones")
    if recorded and digest and recorded != digest:
        return (f"{run_dir} holds a {label} run tuned on other backbone weights ({recorded}, these are {digest}: "
                "another tower build or LLM); pass --retrain to replace it or --output-dir to keep both")
    return None


def demo_recipe(method: str, method_config: dict, cfg, pipeline: Pipeline, run_dir: Path):
    """`recipes/easyvqa-demo.yaml` with this run's method, settings, training draw and seed.

    The draw (data.limit questions balanced over question types, seeded by `cfg.seed`) depends on
    nothing else, so every method of one size and seed trains on the same questions."""
    from ..training import load_recipe

    overrides = {
        "model.llm": pipeline.llm_dir, "model.vision": pipeline.vision_dir, "model.method": method,
        "model.method_config": dict(method_config), "model.prompt_layout": cfg.prompt_layout,
        "data.limit": cfg.train_questions, "data.balance_by": "qtype", "data.sample_seed": cfg.seed,
        "data.balance_weights": dict(cfg.question_weights),
        "train.epochs": cfg.epochs, "train.batch_size": cfg.batch_size, "train.grad_accum": 1,
        "train.lr": cfg.lr, "train.seed": cfg.seed, "train.output_dir": str(run_dir),
    }
    if cfg.balance_within:
        overrides["data.balance_within"] = list(cfg.balance_within)
    if cfg.answer_style != "word":  # a word-style recipe stays as recorded before the option existed
        overrides["data.answer_style"] = cfg.answer_style
    if cfg.data_dir:
        overrides["data.data_dir"] = cfg.data_dir
    return load_recipe("easyvqa-demo", overrides)


def as_recorded(recipe) -> dict:
    """The recipe as the trainer writes it to recipe.yaml (a YAML round trip)."""
    return yaml.safe_load(yaml.safe_dump(recipe.to_dict(), sort_keys=False))


def same_recipe(recorded, recipe) -> bool:
    """Whether a recipe recorded by an earlier run is this one. Keys the record lacks count as their
    defaults, so that a run recorded before a recipe key was added to the library is still reused; where
    it was written does not count, so that a run directory copied from another output directory or
    machine is reused where it now lies."""
    if not isinstance(recorded, dict):
        return False
    from ..recipes import Recipe

    defaults = as_recorded(Recipe())
    filled = {name: ({**defaults[name], **value} if isinstance(value, dict) and isinstance(defaults.get(name), dict)
                     else value) for name, value in recorded.items()}
    return _placeless(filled) == _placeless(as_recorded(recipe))


def _placeless(recorded: dict) -> dict:
    """A recorded recipe without its output directory, in JSON's types."""
    plain = json.loads(json.dumps(recorded))
    if isinstance(plain.get("train"), dict):
        plain["train"].pop("output_dir", None)
    return plain


def _read(path: Path, loader=json.loads) -> dict | None:
    try:
        return loader(path.read_text()) if path.is_file() else None
    except (OSError, ValueError, yaml.YAMLError):
        return None  # a torn or foreign file: treated as absent, the run is done again


def _summary(run_dir: Path) -> dict | None:
    return _read(run_dir / "train_summary.json")


def conflict(label: str, recipe, run_dir: Path) -> str | None:
    """Why `run_dir` cannot take this run (it holds one with other settings), or None."""
    from ..training.state import latest_checkpoint

    recorded = _read(run_dir / "recipe.yaml", yaml.safe_load)
    summary = _summary(run_dir)
    started = (summary is not None and not summary.get("stopped_early")) or (
        run_dir.is_dir() and latest_checkpoint(run_dir) is not None)
    if started and not same_recipe(recorded, recipe):
        return (f"{run_dir} holds a {label} run with other settings; pass --retrain to replace it "
                "or --output-dir to keep both")
    return None


def tune(label: str, recipe, run_dir: Path, cfg, log=print) -> dict:
    """Tune, or carry on with the run already in `run_dir` when its recipe is this one: a finished
    run is reused, an interrupted one resumed. A run with other settings is never overwritten
    unless `cfg.retrain` says so."""
    from ..training import train
    from ..training.state import latest_checkpoint

    if cfg.retrain and run_dir.exists():
        log(f"{label}: --retrain: removing the previous run in {run_dir}")
        shutil.rmtree(run_dir)
    problem = conflict(label, recipe, run_dir)
    if problem:
        raise DemoError(problem)
    summary = _summary(run_dir)
    same = same_recipe(_read(run_dir / "recipe.yaml", yaml.safe_load), recipe)
    if same and summary is not None and not summary.get("stopped_early"):
        log(f"{label}: reusing the run already tuned with these settings in {run_dir} (--retrain to tune again)")
        return {**summary, "adapter_dir": run_dir / Path(summary["adapter_dir"]).name, "reused": True}
    resume = same and latest_checkpoint(run_dir) is not None
    log(f"{label}: {'resuming' if resume else 'tuning'} on {cfg.train_questions} train questions, "
        f"{cfg.epochs} epoch(s)")
    result = train(recipe, resume=resume, progress=cfg.progress)
    return {"adapter_dir": result.adapter_dir, "seconds": result.seconds, "steps": result.steps,
            "final_loss": result.final_loss, "resumed_from": str(result.resumed_from or "") or None}


def finished_row(recipe, run_dir: Path, digest: str) -> dict | None:
    """The recorded row of this exact run (same recipe, same test questions, training finished), or None."""
    record = _read(run_dir / RESULT_NAME)
    summary = _summary(run_dir)
    if record is None or summary is None or summary.get("stopped_early"):
        return None
    same = same_recipe(record.get("recipe"), recipe) and record.get("test") == digest
    return record.get("row") if same and isinstance(record.get("row"), dict) else None


def rescored(row: dict, predictions: Path, examples) -> dict:
    """A recorded row with its scores computed again from the run's saved predictions, so that a reused run
    reports what the current scorer reads in them (a count added since it ran); as recorded where the
    predictions are gone or do not cover the test questions."""
    from ..data import score_exact_match

    saved = _read(predictions) or {}
    answers = {r.get("id"): r.get("generated") for r in saved.get("predictions", []) if isinstance(r, dict)}
    if not examples or any(ex.id not in answers for ex in examples):
        return row
    return {**row, **score_columns(score_exact_match(answers, examples))}


def score_columns(metrics: dict) -> dict:
    """The accuracies a result row carries, from an easy-VQA scorer's metrics (`score_exact_match`)."""
    return {"overall": metrics["overall"], "by_type": metrics["by_type"], "yes_no": metrics.get("yes_no")}


def load_average() -> float | None:
    """The 1-minute load average when a timing starts: what tells an idle machine's seconds from a busy one's."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def train_and_evaluate(label: str, method: str, method_config: dict, cfg, pipeline: Pipeline,
                       run_dir: Path) -> dict:
    """Tune `method` with `method_config` in `run_dir`, score it on the pipeline's test questions, and
    record the row; an identical run recorded earlier is returned as it is, without loading a model."""
    from ..evaluation import evaluate
    from ..evaluation.journal import journal_path
    from ..evaluation.loading import load_for_eval

    log = pipeline.log
    recipe = demo_recipe(method, method_config, cfg, pipeline, run_dir)
    digest = pipeline.test_digest
    problem = None if cfg.retrain else other_backbones(label, run_dir, pipeline.backbones)
    if problem:
        raise DemoError(problem)
    row = None if cfg.retrain else finished_row(recipe, run_dir, digest)
    if row is not None:
        log(f"{label}: reusing the run already tuned and evaluated with these settings in {run_dir} "
            "(--retrain to tune again)")
        return {**rescored(row, run_dir / EVAL_NAME, pipeline.test), "reused": True, "eval_reused": True}
    load = load_average()
    result = tune(label, recipe, run_dir, cfg, log)
    model, tokenizer, processor = load_for_eval(result["adapter_dir"])
    output = run_dir / EVAL_NAME
    eval_resumed = journal_path(output).is_file()
    log(f"{label}: evaluating on {len(pipeline.test)} test questions")
    start = time.perf_counter()
    scored = evaluate(model, tokenizer, processor, "easyvqa", pipeline.test, batch_size=cfg.eval_batch_size,
                      max_new_tokens=cfg.answer_tokens, progress=cfg.progress, output=output, resume=True,
                      settings={"adapter": str(result["adapter_dir"])})
    row = {
        "method": method, "trainable": model.parameter_counts()["trainable"],
        "extra_tokens": model.method.extra_input_tokens, "train_s": result["seconds"],
        "eval_s": time.perf_counter() - start, **score_columns(scored["metrics"]),
        "train_steps": result["steps"],
        "final_loss": result["final_loss"], "adapter_dir": str(result["adapter_dir"]),
        # seconds of a resumed training or evaluation cover only its last part
        "train_resumed": bool(result.get("resumed_from")), "eval_resumed": eval_resumed,
        "load_average": load, "threads": _threads(), "backbones": pipeline.backbones or None,
    }
    atomic_write_json(run_dir / RESULT_NAME, {"recipe": as_recorded(recipe), "test": digest,
                                              "backbones": pipeline.backbones or None, "row": row})
    return {**row, "reused": result.get("reused", False), "eval_reused": False}


def _threads() -> int:
    import torch

    return torch.get_num_threads()
