"""Batched generation from `VLExample`s: the one decoding loop every evaluator and wrapper uses.

Batches are left-padded by `VLCollator(for_generation=True)`, so each row's new
tokens start at the same column; only those are decoded. Greedy by default
(the papers' ScienceQA protocol); any Hugging Face `generate` option passes through.
"""
from __future__ import annotations

import torch

from ..collate import VLCollator
from ..context import prompt_token_limit
from ..data.example import VLExample
from ..prompting import pad_token_id


class GenerationCollator(VLCollator):
    """`VLCollator` for generation (left-padded, no labels). `max_length`: see
    `ademvl.context.prompt_token_limit`."""

    def __init__(self, tokenizer, image_processor, num_visual_tokens: int, max_length: int | None = None,
                 num_prefix_tokens: int = 0, prompt_layout: str = "plain"):
        super().__init__(tokenizer, image_processor, num_visual_tokens, max_length, for_generation=True,
                         num_prefix_tokens=num_prefix_tokens, prompt_layout=prompt_layout)


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def generation_kwargs(tokenizer, max_new_tokens: int, **gen_kwargs) -> dict:
    """Greedy unless `do_sample=True`; stop at EOS; sampling knobs ignored when greedy."""
    kwargs = {"max_new_tokens": max_new_tokens, "do_sample": False, "num_beams": 1,
              "pad_token_id": pad_token_id(tokenizer), "eos_token_id": tokenizer.eos_token_id}
    kwargs.update({k: v for k, v in gen_kwargs.items() if v is not None})
    if not kwargs["do_sample"]:
        for key in ("temperature", "top_p", "top_k"):
            kwargs.pop(key, None)
    return kwargs


@torch.no_grad()
def generate_batch(model, tokenizer, image_processor, examples: list[VLExample], max_new_tokens: int = 32,
                   max_length: int | None = None, **gen_kwargs) -> list[str]:
    """Decoded new text (stripped) of each example, generated together in one batch.

    A prompt is cut (its end kept) to fit the LLM's context with room for `max_new_tokens`,
    and to `max_length` tokens if given."""
    limit = prompt_token_limit(model, reserve=max_new_tokens, cap=max_length)
    collator = GenerationCollator.for_model(model, tokenizer, image_processor, max_length=limit)
    batch = collator(list(examples))
    device = model_device(model)
    batch = {k: v.to(device) for k, v in batch.items()}
    out = model.generate(**batch, **generation_kwargs(tokenizer, max_new_tokens, **gen_kwargs))
    new_tokens = out[:, batch["input_ids"].shape[1]:]
    return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


def generate_answers(model, tokenizer, image_processor, examples, batch_size: int = 8, max_new_tokens: int = 32,
                     progress: bool = True, max_length: int | None = None, on_batch=None,
                     **gen_kwargs) -> dict[str, str]:
    """`{example.id: generated text}` for every example, `batch_size` at a time (greedy by default).

    `gen_kwargs` go to `model.generate` (`do_sample=True, top_p=0.75, temperature=0.1`, ...).
    `on_batch({id: text})` is called after every batch (e.g. to write the predictions as they come).
    A missing or corrupt image raises `ademvl.data.ImageError` naming the file and record.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    examples = list(examples)
    ids = [ex.id for ex in examples]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"example ids must be unique to key the answers; {duplicate!r} repeats")
    was_training = model.training
    model.eval()
    starts = range(0, len(examples), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="generating", unit="batch")
    answers: dict[str, str] = {}
    try:
        for start in starts:
            chunk = examples[start:start + batch_size]
            texts = generate_batch(model, tokenizer, image_processor, chunk, max_new_tokens, max_length, **gen_kwargs)
            batch_answers = dict(zip((ex.id for ex in chunk), texts))
            answers.update(batch_answers)
            if on_batch is not None:
                on_batch(batch_answers)
    finally:
        model.train(was_training)
    return answers
