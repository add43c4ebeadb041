"""The official evaluation protocols (`eval_sqa.py`, `eval_caption.py`), for models in an official layout.

ScienceQA: the prompt gets "The answer is" appended and ONE token is generated (greedy);
the prediction is the first capital letter of the decoded token, right only if it names
one of the problem's choices (A-E). The official run also builds the prompt as `QCM-A`
with the image caption in the context (LaVIN's captions.json), though training used
`CQM-A` without captions: `ademvl eval` follows it (see `ademvl/commands/eval.py`).
COCO: the prompt is "a picture of", 20 tokens are generated, and the caption is what
follows "picture of " in them (the official training target repeats the prompt), else
the whole text.
"""
from __future__ import annotations

import dataclasses
import re

ANSWER_CUE = "The answer is"
CAPTION_PROMPT = "a picture of"
SCIENCEQA_PROMPT_FORMAT = "QCM-A"
MAX_NEW_TOKENS = {"scienceqa": 1, "coco": 20}
OPTIONS = "ABCDE"  # eval_sqa.py's PromptArgs.options

_CAPITAL = re.compile(r"([A-Z])")
_CAPTION = re.compile(r"picture of (.+)")


def prepare_examples(dataset: str, examples: list) -> list:
    """The examples with the official evaluation prompt."""
    if dataset == "scienceqa":
        return [dataclasses.replace(ex, prompt=ex.prompt + ANSWER_CUE) for ex in examples]
    if dataset == "coco":
        return [dataclasses.replace(ex, prompt=CAPTION_PROMPT) for ex in examples]
    return list(examples)


def parse_official_letter(text: str | None, n_choices: int) -> int | None:
    """eval_sqa.py: the first capital letter of the output; a letter naming no choice is wrong (None)."""
    found = _CAPITAL.findall(text or "")
    if not found or found[0] not in OPTIONS[:n_choices]:
        return None
    return OPTIONS.index(found[0])


def postprocess(dataset: str, answers: dict[str, str]) -> dict[str, str]:
    """eval_caption.py: keep what follows "picture of " when the output repeats the prompt."""
    if dataset != "coco":
        return answers
    out = {}
    for key, text in answers.items():
        found = _CAPTION.findall(text)
        out[key] = found[0] if found else text
    return out
