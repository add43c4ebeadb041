"""LLaVA-Instruct conversations as single-answer training records.

Input: ``[{"id", "image" (optional), "conversations": [{"from": "human",
"value": "<image>\\n..."}, {"from": "gpt", "value": ...}, ...]}]``.

Scheme (one record per (human, gpt) pair, so every assistant turn is
supervised once, with the whole preceding dialogue visible)::

    prompt_k = "Instruction: {h_1}\\nResponse: {g_1}\\n" ... "Instruction: {h_k}\\nResponse:"
    answer_k = g_k                       id = "{record id}_{k-1}"

The ``<image>`` placeholder is removed (the image enters through the model's
visual path, not a token). Records without ``"image"`` are text-only.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .example import VLExample
from .files import read_json
from .registry import DatasetSpec, register

__all__ = ["load_llava_instruct", "strip_image_tag"]

_HUMAN = {"human", "user"}
_GPT = {"gpt", "assistant"}
_IMAGE_TAG = re.compile(r"\s*<image>\s*")

# One turn as training lays it out; "{prompt}" is the human turn.
QUESTION_TEMPLATE = "Instruction: {prompt}\nResponse:"


def strip_image_tag(text: str) -> str:
    """Remove every ``<image>`` placeholder and the whitespace around it."""
    return _IMAGE_TAG.sub(" ", text).strip() if "<image>" in text else text.strip()


def _turns(rec: Mapping, rid: str) -> list[tuple[str, str]]:
    conv = rec.get("conversations")
    if not isinstance(conv, list) or not conv:
        raise ValueError(f"LLaVA record {rid}: missing or empty 'conversations'")
    if len(conv) % 2:
        raise ValueError(f"LLaVA record {rid}: odd number of turns ({len(conv)}); expected human/gpt pairs")
    pairs = []
    for k in range(0, len(conv), 2):
        h, g = conv[k], conv[k + 1]
        for j, turn, roles, want in ((k, h, _HUMAN, "human"), (k + 1, g, _GPT, "gpt")):
            if not isinstance(turn, Mapping) or turn.get("from") not in roles:
                got = turn.get("from") if isinstance(turn, Mapping) else type(turn).__name__
                raise ValueError(f"LLaVA record {rid}: turn {j} should be from {want!r}, got {got!r}")
            if not isinstance(turn.get("value"), str):
                raise ValueError(f"LLaVA record {rid}: turn {j} has no string 'value'")
        pairs.append((strip_image_tag(h["value"]), g["value"].strip()))
    return pairs


def load_llava_instruct(json_path, image_root=None, limit: int | None = None) -> list[VLExample]:
    """Load a LLaVA-instruct JSON file; images resolve to ``image_root/record["image"]``.

    ``limit`` caps the number of source conversations. ``meta`` holds the
    source ``conversation_id`` and ``turn`` index.
    """
    path = os.fspath(json_path)
    data = read_json(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of conversations")
    out: list[VLExample] = []
    for n, rec in enumerate(data):
        if limit is not None and n >= limit:
            break
        if not isinstance(rec, Mapping):
            raise ValueError(f"{path}: entry #{n} is not an object")
        rid = str(rec.get("id", f"#{n}"))
        img = rec.get("image")
        if img is not None and not isinstance(img, str):
            raise ValueError(f"LLaVA record {rid}: 'image' must be a file name")
        image = (os.path.join(os.fspath(image_root), img) if image_root is not None else img) if img else None
        history = ""
        for k, (q, a) in enumerate(_turns(rec, rid)):
            prompt = history + QUESTION_TEMPLATE.format(prompt=q)
            out.append(VLExample(f"{rid}_{k}", prompt, a, image, {"conversation_id": rid, "turn": k}))
            history = f"{prompt} {a}\n"
    return out


# --- registry entry ---------------------------------------------------------------------------------

@dataclass
class LLaVAInstructOptions:
    """The recipe's `data.*` keys that `load_llava_instruct` takes (no splits: `data.split` is ignored)."""

    limit: int | None = None
    json_path: str | None = None
    image_root: str | None = None


def evaluate_llava_instruct(answers, examples) -> dict:
    records = [{"id": ex.id, "prompt": ex.prompt, "generated": answers[ex.id], "reference": ex.answer}
               for ex in examples]
    return {"metrics": {}, "predictions": records}


register(DatasetSpec(
    "llava_instruct", load_llava_instruct, LLaVAInstructOptions, scorer=evaluate_llava_instruct,
    max_new_tokens=256,  # a chat reply
    question_template=lambda options: QUESTION_TEMPLATE,
))
