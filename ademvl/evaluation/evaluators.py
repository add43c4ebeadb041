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
from ..data import format_scienceqa_table, parse_answer_letter, score_captions, score_exact_match, scienceqa_table
from ..data.easyvqa import normalize_answer
from ..official import protocol
from . import generation
from .journal import PredictionJournal

# Enough for each dataset's usual answer ("The answer is B.", a caption, one word, a chat reply).
DEFAULT_MAX_NEW_TOKENS = {"scienceqa": 32, "coco": 32, "easyvqa": 8, "llava_instruct": 256}


def _generate(model, tokenizer, image_processor, examples, batch_size, max_new_tokens, progress, gen_kwargs,
              on_batch=None):
    return generation.generate_answers(model, tokenizer, image_processor, examples, batch_size=batch_size,
                                       max_new_tokens=max_new_tokens, progress=progress, on_batch=on_batch,
                                       **gen_kwargs)


def scienceqa_records(answers: dict[str, str], examples, parse=parse_answer_letter) -> tuple[dict, list[dict]]:
    """Paper table and one record per problem (id, generated text, parsed letter, correct letter, correct?).
    `parse(text, n_choices)`: the library's parser, or the official one (`ademvl.official.protocol`)."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    parsed, records = {}, []
    for ex in examples:
        text = answers.get(ex.id, "")
        index = parse(text, len(ex.meta["choices"]))
        parsed[ex.id] = index
        records.append({
            "id": ex.id,
            "generated": text,
            "parsed": None if index is None else letters[index],
            "answer": ex.meta["answer_letter"],
            "correct": index is not None and index == ex.meta["answer"],
        })
    return scienceqa_table(parsed, examples), records


def evaluate_scienceqa(answers, examples, parse=parse_answer_letter) -> dict:
    table, records = scienceqa_records(answers, examples, parse)
    return {"metrics": table, "predictions": records, "table": format_scienceqa_table(table)}


def evaluate_coco(answers, examples) -> dict:
    missing = [ex.id for ex in examples if not ex.meta.get("refs")]
    if missing:
        raise ValueError(f"COCO records without reference captions (load a val/test split): e.g. {missing[:3]}")
    refs = {ex.id: ex.meta["refs"] for ex in examples}
    metrics = score_captions(answers, refs)
    records = [{"id": ex.id, "image": ex.image, "generated": answers[ex.id], "refs": ex.meta["refs"]}
               for ex in examples]
    return {"metrics": metrics, "predictions": records}


def evaluate_easyvqa(answers, examples) -> dict:
    metrics = score_exact_match(answers, examples)
    records = [{"id": ex.id, "question": ex.meta.get("question", ex.prompt), "qtype": ex.meta.get("qtype"),
                "generated": answers[ex.id], "answer": ex.answer,
                "correct": normalize_answer(answers[ex.id]) == normalize_answer(ex.answer) != ""}
               for ex in examples]
    return {"metrics": metrics, "predictions": records}


def evaluate_llava_instruct(answers, examples) -> dict:
    records = [{"id": ex.id, "prompt": ex.prompt, "generated": answers[ex.id], "reference": ex.answer}
               for ex in examples]
    return {"metrics": {}, "predictions": records}


SCORERS: dict[str, Callable] = {
    "scienceqa": evaluate_scienceqa,
    "coco": evaluate_coco,
    "easyvqa": evaluate_easyvqa,
    "llava_instruct": evaluate_llava_instruct,
}


def journal_settings(dataset_name: str, max_new_tokens: int | None, gen_kwargs: dict,
                     extra: dict | None = None) -> dict:
    """What must match for predictions of an earlier, interrupted run to be reused."""
    return {"dataset": dataset_name,
            "max_new_tokens": DEFAULT_MAX_NEW_TOKENS[dataset_name] if max_new_tokens is None else max_new_tokens,
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
    if dataset_name not in SCORERS:
        raise ValueError(f"unknown dataset {dataset_name!r}; available: {', '.join(sorted(SCORERS))}")
    examples = list(examples)
    if not examples:
        raise ValueError(f"no {dataset_name} examples to evaluate")
    if official is None:
        official = getattr(getattr(model, "config", None), "official", None) is not None
    scorer = SCORERS[dataset_name]
    if official:
        examples = protocol.prepare_examples(dataset_name, examples)
        max_new_tokens = max_new_tokens or protocol.MAX_NEW_TOKENS.get(dataset_name)
        if dataset_name == "scienceqa":
            scorer = functools.partial(evaluate_scienceqa, parse=protocol.parse_official_letter)
        settings = {**(settings or {}), "official": True}
    if max_new_tokens is None:
        max_new_tokens = DEFAULT_MAX_NEW_TOKENS[dataset_name]
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
