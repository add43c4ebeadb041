"""Input-stage fusion: the token layout of one sample (SPEC §1).

    image sample:      [prefix] [bos] "Image: " <visual token(s)> "\n" prompt " " answer [eos]
    text-only sample:  [prefix] [bos] "Image: N/A" "\n" prompt " " answer [eos]

The visual tokens occupy placeholder positions in `input_ids`; the model writes
the method's visual embeddings over them (`image_slot` = first position). Methods
with a modality token (LaVIN, Bottleneck Adapter) have one more placeholder, the
prefix, before [bos]: the first real token of every sample.
Labels are -100 everywhere except on the answer and EOS.
"""
from __future__ import annotations

from dataclasses import dataclass

IMAGE_PREFIX = "Image: "
NO_IMAGE_PREFIX = "Image: N/A"
SEPARATOR = "\n"
IGNORE_INDEX = -100


@dataclass
class EncodedSample:
    input_ids: list[int]
    labels: list[int]
    image_slot: int  # -1 when the sample has no visual tokens


def placeholder_id(tokenizer) -> int:
    """Any real id works (its embedding is overwritten); pad/unk/eos in that order."""
    for token_id in (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return token_id
    return 0


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def encode_sample(
    tokenizer,
    prompt: str,
    answer: str | None,
    has_image: bool,
    num_visual_tokens: int,
    max_length: int | None = None,
    num_prefix_tokens: int = 0,
) -> EncodedSample:
    """Token ids, labels and image slot of one sample; `answer=None` for a generation prompt."""
    ids: list[int] = [placeholder_id(tokenizer)] * num_prefix_tokens
    if tokenizer.bos_token_id is not None:
        ids.append(tokenizer.bos_token_id)
    slot = -1
    if has_image:
        ids += _ids(tokenizer, IMAGE_PREFIX)
        if num_visual_tokens:
            slot = len(ids)
            ids += [placeholder_id(tokenizer)] * num_visual_tokens
    else:
        ids += _ids(tokenizer, NO_IMAGE_PREFIX)
    head = len(ids)
    prompt_ids = _ids(tokenizer, SEPARATOR + prompt)
    answer_ids: list[int] = []
    if answer is not None:
        answer_ids = _ids(tokenizer, " " + answer) if answer else []
        if tokenizer.eos_token_id is not None:
            answer_ids.append(tokenizer.eos_token_id)
    if max_length is not None and head + len(prompt_ids) + len(answer_ids) > max_length:
        # Keep the image prefix and the answer; cut the prompt's beginning (the question sits at its end).
        from transformers.utils import logging as hf_logging

        hf_logging.get_logger(__name__).warning_once(
            f"a prompt did not fit in {max_length} tokens (the LLM's context or train.max_length): its beginning "
            "was cut and its end kept")
        room = max(max_length - head - len(answer_ids), 0)
        prompt_ids = prompt_ids[len(prompt_ids) - room:] if room else []
        answer_ids = answer_ids[: max_length - head - len(prompt_ids)]
    ids += prompt_ids
    labels = [IGNORE_INDEX] * len(ids) + answer_ids
    return EncodedSample(input_ids=ids + answer_ids, labels=labels, image_slot=slot)
