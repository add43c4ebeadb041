"""Per-dataset evaluation: generate, score with the dataset's own scorer, keep every prediction.

Each evaluator returns ``{"dataset", "n", "metrics", "predictions", "generation"}``;
``predictions`` is one record per example, so a saved result can be re-scored or
inspected without rerunning the model. Generation goes through the module-level
``generate_answers`` name, which tests (and callers) may replace.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from ..atomic import atomic_write_json
from ..data import SPECS, dataset_spec
from ..data.coco import evaluate_coco
from ..data.easyvqa import evaluate_easyvqa
from ..data.llava_instruct import evaluate_llava_instruct
from ..data.scienceqa import evaluate_scienceqa, scienceqa_records
from ..official import protocol
from ..prompting import PromptSpec
from . import generation
from .journal import PredictionJournal

# Views of the dataset registry (`ademvl.data`), which owns each dataset's scorer and answer length.
DEFAULT_MAX_NEW_TOKENS = {name: spec.max_new_tokens for name, spec in SPECS.items()}
SCORERS: dict[str, Callable] = {name: spec.scorer for name, spec in SPECS.items()}


def _generate(model, tokenizer, image_processor, examples, batch_size, max_new_tokens, progress, gen_kwargs,
              on_batch=None):
    return generation.generate_answers(model, tokenizer, image_processor, examples, batch_size=batch_size,
                                       max_new_tokens=max_new_tokens, progress=progress, on_batch=on_batch,
                                       **gen_kwargs)


def journal_settings(dataset_name: str, max_new_tokens: int | None, gen_kwargs: dict,
                     extra: dict | None = None) -> dict:
    """What must match for predictions of an earlier, interrupted run to be reused."""
    return {"dataset": dataset_name,
            "max_new_tokens": dataset_spec(dataset_name).max_new_tokens if max_new_tokens is None else max_new_tokens,
            **{k: v for k, v in gen_kwargs.items() if v is not None}, **(extra or {})}


def evaluate(model, tokenizer, image_processor, dataset_name: str, examples, batch_size: int = 8,
             max_new_tokens: int | None = None, progress: bool = True, output: str | Path | None = None,
             resume: bool = False, journal: PredictionJournal | None = None, settings: dict | None = None,
             official: bool | None = None, **gen_kwargs) -> dict:
    """Generate an answer for every example of `dataset_name`, score them, optionally save JSON.

    Returns ``{"dataset", "n", "metrics", "predictions", "generation"}`` (+ ``"table"``,
    the printed paper table, for ScienceQA). With `output`, predictions are appended to
    its journal (`journal.py`) as they are generated and `output` is written atomically
    at the end; `resume=True` reuses the predictions an interrupted run left there.
    `journal`: one already opened (the CLI opens it before loading the model). `settings`: what else
    the predictions depend on (e.g. which model), recorded in the journal and checked on resume.
    `official`: follow the official protocol (`ademvl.official.protocol`: ScienceQA's one token after
    "The answer is", COCO's "a picture of"); None: when the model is in an official layout.
    """
    spec = dataset_spec(dataset_name)
    examples = list(examples)
    if not examples:
        raise ValueError(f"no {dataset_name} examples to evaluate")
    if official is None:
        official = PromptSpec.from_config(getattr(model, "config", None)).official is not None
    scorer = spec.scorer
    if official:
        examples = protocol.prepare_examples(dataset_name, examples)
        if spec.official is not None:
            max_new_tokens = max_new_tokens or spec.official.max_new_tokens
            if spec.official.parse is not None:
                scorer = functools.partial(spec.scorer, parse=spec.official.parse)
        settings = {**(settings or {}), "official": True}
    if max_new_tokens is None:
        max_new_tokens = spec.max_new_tokens
    if journal is None and output is not None:
        journal = PredictionJournal.open(output, journal_settings(dataset_name, max_new_tokens, gen_kwargs, settings),
                                         resume=resume, option="output")
    done = dict(journal.done) if journal is not None else {}
    todo = [ex for ex in examples if ex.id not in done]
    answers = {ex.id: done[ex.id] for ex in examples if ex.id in done}
    if todo:
        answers.update(_generate(model, tokenizer, image_processor, todo, batch_size, max_new_tokens, progress,
                                 gen_kwargs, on_batch=journal.add if journal is not None else None))
    if official:
        answers = protocol.postprocess(dataset_name, answers)
    result = {"dataset": dataset_name, "n": len(examples), **scorer(answers, examples), "official": bool(official),
              "generation": {"max_new_tokens": max_new_tokens, "batch_size": batch_size,
                             **{k: v for k, v in gen_kwargs.items() if v is not None}}}
    if output is not None:
        atomic_write_json(Path(output), result)
    if journal is not None:
        journal.close()
    return result
