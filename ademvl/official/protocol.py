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

import re

ANSWER_CUE = "The answer is"
CAPTION_PROMPT = "a picture of"
SCIENCEQA_PROMPT_FORMAT = "QCM-A"
OPTIONS = "ABCDE"  # eval_sqa.py's PromptArgs.options

_CAPITAL = re.compile(r"([A-Z])")
_CAPTION = re.compile(r"picture of (.+)")


def _official(dataset: str):
    """The dataset's official protocol, as its registry entry (`ademvl.data`) declares it; None: it has none."""
    from ..data import SPECS

    spec = SPECS.get(dataset)
    return None if spec is None else spec.official


def __getattr__(name: str):
    if name == "MAX_NEW_TOKENS":  # {dataset: tokens the official evaluation generates}, from the registry
        from ..data import SPECS

        return {key: spec.official.max_new_tokens for key, spec in SPECS.items() if spec.official is not None}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def prepare_examples(dataset: str, examples: list) -> list:
    """The examples with the official evaluation prompt."""
    official = _official(dataset)
    if official is None or official.prepare is None:
        return list(examples)
    return [official.prepare(ex) for ex in examples]


def parse_official_letter(text: str | None, n_choices: int) -> int | None:
    """eval_sqa.py: the first capital letter of the output; a letter naming no choice is wrong (None)."""
    found = _CAPITAL.findall(text or "")
    if not found or found[0] not in OPTIONS[:n_choices]:
        return None
    return OPTIONS.index(found[0])


def official_caption(text: str) -> str:
    """eval_caption.py: keep what follows "picture of " when the output repeats the prompt."""
    found = _CAPTION.findall(text)
    return found[0] if found else text


def postprocess(dataset: str, answers: dict[str, str]) -> dict[str, str]:
    """The generated texts as the dataset's official protocol scores them (COCO: `official_caption`)."""
    official = _official(dataset)
    if official is None or official.postprocess is None:
        return answers
    return {key: official.postprocess(text) for key, text in answers.items()}
