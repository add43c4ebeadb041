"""easy-VQA (PyPI ``easy-vqa``): a tiny, offline VQA set for demos and smoke runs.

Data layout (inside the installed package, or ``data_dir`` for tests)::

    data/train/questions.json   [[question, answer, image_id], ...]
    data/train/images/{image_id}.png          (64×64)
    data/test/...               same
    data/answers.txt            13 answers

The package has no validation split: ``"val"`` is carved from train *by
image* (``val_fraction`` of the train image ids, chosen by a seeded shuffle),
so no val image is ever seen in training; ``"train"`` is the rest.
"""
from __future__ import annotations

import os
import random
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..package_data import package_dirs
from .example import VLExample
from .files import read_json
from .registry import DatasetOptionError, DatasetSpec, register

__all__ = [
    "DEFAULT_VQA_PROMPT",
    "easyvqa_data_dir",
    "load_easyvqa",
    "question_type",
    "question_facets",
    "image_attributes",
    "normalize_answer",
    "rationale_follows",
    "score_exact_match",
]

DEFAULT_VQA_PROMPT = "Question: {question}\nAnswer:"
# The shapes and colours easy-VQA draws, in the order the demo tower's pretraining numbers them.
SHAPE_NAMES = ("circle", "rectangle", "triangle")
COLOR_NAMES = ("red", "green", "blue", "black", "gray", "teal", "yellow", "brown")
COLORS = frozenset({*COLOR_NAMES, "grey"})  # colour words an answer may use ("grey" spells gray)
SHAPES = frozenset(SHAPE_NAMES)
QUESTION_TYPES = ("yes/no", "color", "shape")  # what question_type() tells apart, in report order
# how a yes/no answer is written as the training target: the word alone, or the attribute the question
# asks about first ("triangle, so no"), which turns the image-to-question match into a word-to-word one
ANSWER_STYLES = ("word", "rationale")
_SPLITS = ("train", "val", "test")


def easyvqa_data_dir() -> str:
    """The ``data`` folder of the installed ``easy_vqa`` package."""
    for directory in package_dirs("easy_vqa"):
        if (directory / "data").is_dir():
            return str(directory / "data")
    raise ImportError("easy-VQA data not found: pip install easy-vqa --no-deps (or pass data_dir=)")


def question_type(question: str, answer: str) -> str:
    """``"yes/no"``, ``"color"`` or ``"shape"`` from the answer (``"other"`` if none fits)."""
    a = answer.strip().lower()
    if a in ("yes", "no"):
        return "yes/no"
    if a in COLORS:
        return "color"
    if a in SHAPES:
        return "shape"
    return "other"


def question_facets(question: str, answer: str) -> dict:
    """What a question asks about (``"color"`` or ``"shape"``) and whether it is negated.

    easy-VQA's yes/no answers follow the phrasing: 88% of "is there a <colour> shape?" are "no",
    67% of "is there not a <shape>?" are "yes". A training draw spread over these facets and the
    answer (``data.balance_within``) leaves nothing to learn from the phrasing alone.
    """
    qtype = question_type(question, answer)
    words = question.lower().rstrip("?").split()
    about = "shape" if qtype == "shape" or (qtype == "yes/no" and SHAPES.intersection(words)) else "color"
    return {"asks_about": about, "negated": "not" in words or words[:2] == ["is", "no"]}


def derive_candidates(questions) -> dict[int, tuple[set, set] | None]:
    """``{image_id: (possible shapes, possible colours)}`` implied by easy-vqa ``[q, a, id]`` triples
    (None where the constraints contradict).

    easy-VQA ships no image labels, but its questions pin them down: a naming answer ("circle"), the
    other attribute a naming question mentions ("what color is the circle?"), and a yes/no answer
    about one attribute (a "no" rules one value out)."""
    shapes, colors = set(SHAPE_NAMES), set(COLOR_NAMES)
    cand: dict[int, list[set[str]]] = {}
    bad: set[int] = set()
    for q, a, img in questions:
        img = int(img)
        s_set, c_set = cand.setdefault(img, [set(shapes), set(colors)])
        words = re.findall(r"[a-z]+", q.lower())
        ms = [w for w in words if w in shapes]
        mc = [w for w in words if w in colors]
        a = a.strip().lower()
        keep_s, keep_c = set(shapes), set(colors)
        if a in shapes:
            keep_s = {a}
            if len(mc) == 1:
                keep_c = {mc[0]}
        elif a in colors:
            keep_c = {a}
            if len(ms) == 1:
                keep_s = {ms[0]}
        elif a in ("yes", "no") and len(ms) + len(mc) == 1:
            truth = (a == "yes") != question_facets(q, a)["negated"]
            if ms:
                keep_s = {ms[0]} if truth else shapes - {ms[0]}
            else:
                keep_c = {mc[0]} if truth else colors - {mc[0]}
        else:
            continue  # uninformative for these rules
        s_set &= keep_s
        c_set &= keep_c
        if not s_set or not c_set:
            bad.add(img)
    return {i: (None if i in bad else (s, c)) for i, (s, c) in cand.items()}


def image_attributes(questions) -> dict[int, dict]:
    """``{image_id: {"shape": …, "color": …}}`` with each attribute the questions pin down to one
    value (:func:`derive_candidates`); an attribute they leave open is left out."""
    out = {}
    for img, found in derive_candidates(questions).items():
        shapes, colors = found or (set(), set())
        out[img] = {kind: next(iter(values)) for kind, values in (("shape", shapes), ("color", colors))
                    if len(values) == 1}
    return out


def _read_questions(data_dir: str, part: str) -> list:
    path = os.path.join(data_dir, part, "questions.json")
    qs = read_json(path)
    for i, q in enumerate(qs):
        if not (isinstance(q, list) and len(q) == 3 and isinstance(q[0], str) and isinstance(q[1], str)):
            raise ValueError(f"{path}: entry #{i} is not [question, answer, image_id]")
    return qs


def _val_images(image_ids: Iterable, val_fraction: float, seed: int) -> set:
    ids = sorted(set(image_ids))
    random.Random(seed).shuffle(ids)
    n_val = int(round(val_fraction * len(ids)))
    return set(ids[:n_val])


def load_easyvqa(
    split: str,
    val_fraction: float = 0.1,
    seed: int = 0,
    limit: int | None = None,
    data_dir=None,
    prompt: str = DEFAULT_VQA_PROMPT,
    answer_style: str = "word",
) -> list[VLExample]:
    """Load easy-VQA ``split`` ∈ {train, val, test} as :class:`VLExample` records.

    Ids are ``"train_{i}"`` / ``"test_{i}"`` with ``i`` the row in the source
    file (val records keep their ``train_`` id). ``limit`` keeps the first
    ``limit`` records in file order. ``meta``: qtype, image_id, question, answer (the source's word,
    whatever the answer style), and :func:`question_facets` (asks_about, negated).

    ``answer_style="rationale"`` writes a yes/no answer as the attribute asked about, then the
    verdict ("is there a circle?" → ``"triangle, so no"``; :func:`image_attributes`), so that a model
    names what it sees before it compares; the scorer reads the verdict (:func:`normalize_answer`).
    A record whose asked attribute its split leaves open keeps the bare word.
    """
    if split not in _SPLITS:
        raise ValueError(f"unknown easy-VQA split {split!r}; valid: {', '.join(_SPLITS)}")
    if answer_style not in ANSWER_STYLES:
        raise ValueError(f"unknown easy-VQA answer_style {answer_style!r}; valid: {', '.join(ANSWER_STYLES)}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    data_dir = easyvqa_data_dir() if data_dir is None else os.fspath(data_dir)
    part = "test" if split == "test" else "train"
    qs = _read_questions(data_dir, part)
    keep = None
    if split != "test":
        val = _val_images((q[2] for q in qs), val_fraction, seed)
        keep = (lambda iid: iid in val) if split == "val" else (lambda iid: iid not in val)
    img_dir = os.path.join(data_dir, part, "images")
    attributes = image_attributes(qs) if answer_style == "rationale" else {}
    out: list[VLExample] = []
    for i, (q, a, iid) in enumerate(qs):
        if keep is not None and not keep(iid):
            continue
        if limit is not None and len(out) >= limit:
            break
        meta = {"qtype": question_type(q, a), "image_id": iid, "question": q, "answer": a, **question_facets(q, a)}
        asked = attributes.get(int(iid), {}).get(meta["asks_about"]) if meta["qtype"] == "yes/no" else None
        out.append(
            VLExample(
                id=f"{part}_{i}",
                prompt=prompt.format(question=q),
                answer=f"{asked}, so {a}" if asked else a,
                image=os.path.join(img_dir, f"{iid}.png"),
                meta=meta,
            )
        )
    return out


_PUNCT = string.punctuation


def normalize_answer(text: str | None) -> str:
    """Lower-case, strip, keep the first word (of the verdict after a rationale's last "so"), strip
    punctuation around it.

    ``" Circle."`` → ``"circle"``; ``"Yes, it is"`` → ``"yes"``; ``"triangle, so no"`` → ``"no"``;
    ``""`` → ``""``.
    """
    words = (text or "").strip().lower().split()
    if "so" in words[1:]:  # "<attribute>, so <verdict>": the verdict is the answer
        words = words[len(words) - words[::-1].index("so"):]
    return words[0].strip(_PUNCT) if words else ""


def rationale_follows(question: str, prediction: str | None) -> bool | None:
    """Whether a rationale answer's verdict is the one its own named attribute implies: "triangle, so no"
    to "is there a circle?" follows, "triangle, so yes" does not, whatever the image shows.

    None where there is nothing to check: the prediction is not "<colour or shape>, so <yes or no>", or
    the question does not name one value of that kind. A verdict that contradicts the model's own
    rationale is a failed comparison, told apart from a misread image (docs/results.md)."""
    words = (prediction or "").strip().lower().split()
    verdict = normalize_answer(prediction)
    if len(words) < 3 or "so" not in words[1:] or verdict not in ("yes", "no"):
        return None
    named = _canonical(words[0].strip(_PUNCT))
    kind = SHAPES if named in SHAPES else COLORS if named in COLORS else None
    asked = {_canonical(w) for w in re.findall(r"[a-z]+", question.lower())} & (kind or set())
    if len(asked) != 1:
        return None
    shown = named in asked
    negated = question_facets(question, verdict)["negated"]
    return verdict == ("yes" if shown != negated else "no")


def _canonical(word: str) -> str:
    return "gray" if word == "grey" else word


def score_exact_match(preds: Mapping[str, str], examples: Iterable[VLExample]) -> dict:
    """Exact-match accuracy (percent) of normalised ``preds`` vs each example's answer.

    Returns ``{"overall": %, "by_type": {qtype: %}, "n": count, "n_by_type": {...}}``
    over ``examples``; a missing prediction counts as wrong. Where the yes/no records carry
    :func:`question_facets`, ``"yes_no"`` adds their accuracy by what they ask about and a
    ``"balanced"`` accuracy: the mean over (asks about, negated, true answer) of the accuracy in
    each, which is 50% for a model that answers from the phrasing alone, whatever the label prior;
    and, where the predictions are rationales, how many there are and what share of their verdicts
    contradicts the attribute they name (:func:`rationale_follows`).
    """
    n = hit = 0
    t_n: dict[str, int] = {}
    t_hit: dict[str, int] = {}
    strata: dict[tuple, list[int]] = {}
    follows: list[bool] = []
    for ex in examples:
        qt = ex.meta.get("qtype", "other")
        ok = normalize_answer(preds.get(ex.id)) == normalize_answer(ex.answer) != ""
        n += 1
        hit += ok
        t_n[qt] = t_n.get(qt, 0) + 1
        t_hit[qt] = t_hit.get(qt, 0) + ok
        if qt == "yes/no" and "asks_about" in ex.meta:
            key = (ex.meta["asks_about"], bool(ex.meta.get("negated")), normalize_answer(ex.answer))
            strata.setdefault(key, []).append(ok)
        checked = rationale_follows(ex.meta.get("question", ""), preds.get(ex.id)) if qt == "yes/no" else None
        if checked is not None:
            follows.append(checked)
    result = {
        "overall": 100.0 * hit / n if n else 0.0,
        "by_type": {k: 100.0 * t_hit[k] / t_n[k] for k in sorted(t_n)},
        "n": n,
        "n_by_type": dict(sorted(t_n.items())),
    }
    if strata:
        result["yes_no"] = _yes_no_facets(strata)
        if follows:
            result["yes_no"]["rationales"] = len(follows)
            result["yes_no"]["contradicting"] = 100.0 * follows.count(False) / len(follows)
    return result


def _yes_no_facets(strata: dict[tuple, list[int]]) -> dict:
    def percent(hits: list) -> float:
        return 100.0 * sum(hits) / len(hits)

    about = sorted({key[0] for key in strata})
    out = {f"asks_{a}": percent([h for key, hits in strata.items() if key[0] == a for h in hits]) for a in about}
    out["balanced"] = sum(percent(hits) for hits in strata.values()) / len(strata)
    out["strata"] = {f"{a} {'negated' if neg else 'plain'} {ans}": round(percent(hits), 2)
                     for (a, neg, ans), hits in sorted(strata.items())}
    return out


# --- registry entry ---------------------------------------------------------------------------------

@dataclass
class EasyVQAOptions:
    """The recipe's `data.*` keys that `load_easyvqa` takes (None: the loader's default)."""

    split: str | None = None
    limit: int | None = None
    data_dir: str | None = None  # default: the installed easy-vqa package
    prompt: str | None = None  # default: DEFAULT_VQA_PROMPT
    val_fraction: float | None = None
    answer_style: str | None = None  # word (default) | rationale ("triangle, so no" for yes/no)

    def __post_init__(self):
        from ..safeyaml import shown

        if self.val_fraction is not None and not 0 <= self.val_fraction < 1:
            raise DatasetOptionError(f"recipe key 'data.val_fraction' must be in [0, 1), got {shown(self.val_fraction)}")
        if self.answer_style is not None and self.answer_style not in ANSWER_STYLES:
            raise DatasetOptionError(f"recipe key 'data.answer_style' must be one of {', '.join(ANSWER_STYLES)}, "
                                     f"got {shown(self.answer_style)}")


def evaluate_easyvqa(answers, examples) -> dict:
    metrics = score_exact_match(answers, examples)
    records = [{"id": ex.id, "question": ex.meta.get("question", ex.prompt), "qtype": ex.meta.get("qtype"),
                "generated": answers[ex.id], "answer": ex.answer,
                "correct": normalize_answer(answers[ex.id]) == normalize_answer(ex.answer) != ""}
               for ex in examples]
    return {"metrics": metrics, "predictions": records}


def _question_template(options: EasyVQAOptions) -> str:
    return (options.prompt or DEFAULT_VQA_PROMPT).replace("{question}", "{prompt}")


register(DatasetSpec(
    "easyvqa", load_easyvqa, EasyVQAOptions, scorer=evaluate_easyvqa,
    max_new_tokens=8,  # one word
    question_template=_question_template,
    accuracy_key="overall",
))
