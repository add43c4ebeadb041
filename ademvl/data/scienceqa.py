"""ScienceQA in its official layout, the paper's prompt, answer parsing and table.

Layout (the ScienceQA / LaVIN ``data`` folder)::

    root/problems.json      {pid: {question, choices, answer, hint, image,
                                   subject, grade, lecture, solution, split, ...}}
    root/pid_splits.json    {"train": [pid, ...], "val": [...], "test": [...], ...}
    root/images/{split}/{pid}/image.png    (a problem's ``image`` is "image.png" or null)

Prompt formats follow the ScienceQA repository's ``create_one_example``
(input part ``CQM``/``QCM``/``QM``; output part ``A``, ``AL``, ``AE``, ``ALE``,
``AEL``, ``LA``, ``EA``, ``LEA``, ``ELA``; L = lecture, E = explanation, i.e.
the problem's ``solution``), with LaVIN's ``"Response:"`` cue ending every
prompt and the ``"Answer:"`` prefix dropped from the target. The letters of
the output part give the order of the target, e.g. ``QCM-ALE`` →
``"The answer is B. BECAUSE: {lecture} {solution}"`` and ``QCM-LEA`` →
``"{lecture} {solution} The answer is B."``.
"""
from __future__ import annotations

import dataclasses
import os
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..official import protocol
from .example import VLExample
from .files import read_json
from .registry import DatasetSpec, OfficialProtocol, register

__all__ = [
    "PROMPT_FORMATS",
    "SCIENCEQA_COLUMNS",
    "load_scienceqa",
    "build_scienceqa_prompt",
    "parse_answer_letter",
    "scienceqa_table",
    "format_scienceqa_table",
]

LETTERS = string.ascii_uppercase

_INPUTS = {
    "CQM": "Context: {context}\nQuestion: {question}\nOptions: {options}\n",
    "QCM": "Question: {question}\nContext: {context}\nOptions: {options}\n",
    "QM": "Question: {question}\nOptions: {options}\n",
}
_ANS = "The answer is {letter}."
_OUTPUTS = {
    "A": _ANS,
    "AL": _ANS + " BECAUSE: {lecture}",
    "AE": _ANS + " BECAUSE: {solution}",
    "ALE": _ANS + " BECAUSE: {lecture} {solution}",
    "AEL": _ANS + " BECAUSE: {solution} {lecture}",
    "LA": "{lecture} " + _ANS,
    "EA": "{solution} " + _ANS,
    "LEA": "{lecture} {solution} " + _ANS,
    "ELA": "{solution} {lecture} " + _ANS,
}
PROMPT_FORMATS: tuple[str, ...] = tuple(f"{i}-{o}" for i in _INPUTS for o in _OUTPUTS)
RESPONSE_CUE = "Response:"

SCIENCEQA_COLUMNS = ("NAT", "SOC", "LAN", "TXT", "IMG", "NO", "G1-6", "G7-12", "Average")
_SUBJECT_COLUMN = {"natural science": "NAT", "social science": "SOC", "language science": "LAN"}


def _clean(text: str) -> str:
    # as the reference: collapse double spaces left by empty fields, trim
    return text.replace("  ", " ").strip()


def _check_format(prompt_format: str) -> tuple[str, str]:
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(
            f"unknown ScienceQA prompt_format {prompt_format!r}; valid: {', '.join(PROMPT_FORMATS)}"
        )
    inp, out = prompt_format.split("-")
    return inp, out


def _validate(pid: str, prob) -> None:
    if not isinstance(prob, Mapping):
        raise ValueError(f"ScienceQA problem {pid}: record is not an object")
    q = prob.get("question")
    if not isinstance(q, str) or not q.strip():
        raise ValueError(f"ScienceQA problem {pid}: missing or empty field 'question'")
    ch = prob.get("choices")
    if not isinstance(ch, list) or not ch or not all(isinstance(c, str) for c in ch):
        raise ValueError(f"ScienceQA problem {pid}: field 'choices' must be a non-empty list of strings")
    if len(ch) > len(LETTERS):
        raise ValueError(f"ScienceQA problem {pid}: field 'choices' has {len(ch)} entries (max 26)")
    a = prob.get("answer")
    if isinstance(a, bool) or not isinstance(a, int):
        raise ValueError(f"ScienceQA problem {pid}: missing or non-integer field 'answer'")
    if not 0 <= a < len(ch):
        raise ValueError(
            f"ScienceQA problem {pid}: field 'answer'={a} out of range for {len(ch)} choices"
        )


def build_scienceqa_prompt(prob: Mapping, prompt_format: str = "CQM-A", caption: str = "") -> tuple[str, str]:
    """Return ``(prompt, target)`` for one problem dict in ``prompt_format``.

    ``CQM-A``: ``"Context: {hint or N/A}\\nQuestion: {q}\\nOptions: (A) c0 (B) c1\\nResponse:"``
    → ``"The answer is {letter}."``. ``caption``: an image caption appended to the context
    (``"{hint} {caption}"``), as the official evaluation does with LaVIN's captions.json.
    """
    inp, out = _check_format(prompt_format)
    options = " ".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(prob["choices"]))
    context = " ".join([prob.get("hint") or "", caption or ""]).strip() or "N/A"
    prompt = _clean(
        _INPUTS[inp].format(context=context, question=prob["question"], options=options)
        + RESPONSE_CUE
    )
    target = _OUTPUTS[out].format(
        letter=LETTERS[prob["answer"]],
        lecture=(prob.get("lecture") or "").strip(),
        solution=(prob.get("solution") or "").strip(),
    )
    target = _clean(target)
    if target.endswith("BECAUSE:"):  # no lecture/solution to give
        target = target[: -len("BECAUSE:")].strip()
    return prompt, target


def load_scienceqa(
    root,
    split: str,
    prompt_format: str = "CQM-A",
    image_root=None,
    limit: int | None = None,
    captions=None,
) -> list[VLExample]:
    """Load one ScienceQA split as :class:`VLExample` records (order of ``pid_splits.json``).

    ``image_root`` defaults to ``root/images``; an image lives at
    ``image_root/{problem split}/{pid}/{image}`` (the problem's own ``split``
    field, so derived splits such as ``trainval``/``minitest`` find their
    files). ``meta`` holds subject, hint, has_image, grade, choices, answer
    (index) and answer_letter — everything :func:`scienceqa_table` needs.
    ``captions``: LaVIN's ``captions.json`` (``{"captions": {pid: text}}``, a path or the
    loaded dict) whose captions join the context, as in the official evaluation.
    """
    _check_format(prompt_format)
    root = os.fspath(root)
    image_root = os.path.join(root, "images") if image_root is None else os.fspath(image_root)
    problems = read_json(os.path.join(root, "problems.json"))
    splits = read_json(os.path.join(root, "pid_splits.json"))
    for path, data in (("problems.json", problems), ("pid_splits.json", splits)):
        if not isinstance(data, dict):
            raise ValueError(f"'{os.path.join(root, path)}' must hold a JSON object (pid → problem / split → pids)")
    if split not in splits:
        raise ValueError(
            f"unknown ScienceQA split {split!r}; splits in pid_splits.json: {', '.join(sorted(splits))}"
        )
    pids = splits[split]
    caption_of = _read_captions(captions)
    if limit is not None:
        pids = pids[:limit]
    out = []
    for pid in pids:
        pid = str(pid)
        if pid not in problems:
            raise ValueError(f"ScienceQA problem {pid} (split {split!r}) is missing from problems.json")
        prob = problems[pid]
        _validate(pid, prob)
        prompt, target = build_scienceqa_prompt(prob, prompt_format, caption_of.get(pid, ""))
        img_name = prob.get("image")
        if img_name is not None and not isinstance(img_name, str):
            raise ValueError(f"ScienceQA problem {pid} in '{os.path.join(root, 'problems.json')}': 'image' must be a "
                             f"file name or null, got {type(img_name).__name__} {str(img_name)[:60]}")
        image = (
            os.path.join(image_root, str(prob.get("split") or split), pid, img_name)
            if img_name
            else None
        )
        meta = {
            "subject": prob.get("subject", ""),
            "hint": prob.get("hint") or "",
            "has_image": bool(img_name),
            "grade": prob.get("grade", ""),
            "choices": list(prob["choices"]),
            "answer": prob["answer"],
            "answer_letter": LETTERS[prob["answer"]],
            "prompt_format": prompt_format,
        }
        out.append(VLExample(id=pid, prompt=prompt, answer=target, image=image, meta=meta))
    return out


def _read_captions(captions) -> dict:
    if captions is None:
        return {}
    data = read_json(os.fspath(captions)) if isinstance(captions, (str, os.PathLike)) else captions
    found = data.get("captions") if isinstance(data, Mapping) else None
    if not isinstance(found, Mapping) or not all(isinstance(c, str) for c in found.values()):
        where = f"'{os.fspath(captions)}'" if isinstance(captions, (str, os.PathLike)) else "captions"
        raise ValueError(f'{where} must hold {{"captions": {{pid: text}}}} (LaVIN\'s captions.json)')
    return dict(found)


_ANSWER_IS = re.compile(r"(?i:answer\s+is)\s*:?\s*\(?([A-Z])\)?(?![A-Za-z0-9])")
_BARE = re.compile(r"^\s*\(?([A-Z])\)?\s*[.:]?\s*$")
_PAREN_FIRST = re.compile(r"^\s*\(([A-Z])\)")


def parse_answer_letter(text: str | None, n_choices: int) -> int | None:
    """Choice index predicted by generated ``text``, or ``None`` (counts as wrong).

    Deterministic (LaVIN falls back to a random choice; we do not). Tried in
    order: the first ``"answer is X"`` (``"The answer is B."``, ``"answer is (C)"``),
    a reply that is only a letter (``"B"``, ``"(B)"``, ``"B."``), a reply
    starting with ``"(B)"``. Letters are upper-case only; a letter at or beyond
    ``n_choices`` gives ``None``.
    """
    if not text:
        return None
    m = _ANSWER_IS.search(text) or _BARE.match(text) or _PAREN_FIRST.match(text)
    if m is None:
        return None
    idx = LETTERS.index(m.group(1))
    return idx if idx < n_choices else None


def _grade_number(grade) -> int | None:
    m = re.search(r"\d+", str(grade or ""))
    return int(m.group()) if m else None


def scienceqa_table(predictions: Mapping[str, int | None], examples: Iterable[VLExample]) -> dict:
    """Accuracy (percent, 2 decimals) per paper column, over ``examples``.

    NAT/SOC/LAN from ``subject``; TXT = non-empty hint; IMG = has an image;
    NO = neither; G1-6 / G7-12 from ``grade`` ("grade1".."grade12"). A pid
    absent from ``predictions`` or mapped to ``None`` counts as wrong. A column
    with no examples is ``None``.
    """
    hits = {c: 0 for c in SCIENCEQA_COLUMNS}
    totals = {c: 0 for c in SCIENCEQA_COLUMNS}
    for ex in examples:
        m = ex.meta
        pred = predictions.get(ex.id)
        correct = pred is not None and pred == m["answer"]
        cols = ["Average"]
        subj = _SUBJECT_COLUMN.get(str(m.get("subject", "")).strip().lower())
        if subj:
            cols.append(subj)
        has_txt = bool(str(m.get("hint") or "").strip())
        has_img = bool(m.get("has_image"))
        if has_txt:
            cols.append("TXT")
        if has_img:
            cols.append("IMG")
        if not has_txt and not has_img:
            cols.append("NO")
        g = _grade_number(m.get("grade"))
        if g is not None and 1 <= g <= 6:
            cols.append("G1-6")
        elif g is not None and 7 <= g <= 12:
            cols.append("G7-12")
        for c in cols:
            totals[c] += 1
            hits[c] += int(correct)
    return {
        c: (round(100.0 * hits[c] / totals[c], 2) if totals[c] else None) for c in SCIENCEQA_COLUMNS
    }


def format_scienceqa_table(table: Mapping[str, float | None]) -> str:
    """Two-line, column-aligned rendering of :func:`scienceqa_table` (``-`` for empty columns)."""
    cells = [("-" if table.get(c) is None else f"{table[c]:.2f}") for c in SCIENCEQA_COLUMNS]
    widths = [max(len(c), len(v)) for c, v in zip(SCIENCEQA_COLUMNS, cells)]
    head = "  ".join(c.rjust(w) for c, w in zip(SCIENCEQA_COLUMNS, widths))
    row = "  ".join(v.rjust(w) for v, w in zip(cells, widths))
    return head + "\n" + row


# --- registry entry ---------------------------------------------------------------------------------

@dataclass
class ScienceQAOptions:
    """The recipe's `data.*` keys that `load_scienceqa` takes (None: the loader's default)."""

    split: str | None = None
    limit: int | None = None
    root: str | None = None  # folder with problems.json, pid_splits.json, images/
    image_root: str | None = None  # default: ROOT/images
    prompt_format: str | None = None  # e.g. CQM-A (PROMPT_FORMATS)


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


def _official_prompt(ex: VLExample) -> VLExample:
    return dataclasses.replace(ex, prompt=ex.prompt + protocol.ANSWER_CUE)


register(DatasetSpec(
    "scienceqa", load_scienceqa, ScienceQAOptions, scorer=evaluate_scienceqa,
    max_new_tokens=32,  # "The answer is B."
    accuracy_key="Average",
    official=OfficialProtocol(max_new_tokens=1, prepare=_official_prompt, parse=protocol.parse_official_letter),
))
