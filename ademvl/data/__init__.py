"""Dataset layer: every source becomes a list of :class:`VLExample` records.

``load_dataset(name, **kwargs)`` picks a loader by name so configs can name
their data; each loader's own keyword arguments pass straight through.
"""
from __future__ import annotations

from .coco import DEFAULT_CAPTION_PROMPT, load_coco_captions, score_captions
from .easyvqa import load_easyvqa, normalize_answer, question_type, score_exact_match
from .example import VLExample
from .images import ImageError, check_image, filter_loadable, load_image
from .llava_instruct import load_llava_instruct
from .scienceqa import (
    PROMPT_FORMATS,
    SCIENCEQA_COLUMNS,
    build_scienceqa_prompt,
    format_scienceqa_table,
    load_scienceqa,
    parse_answer_letter,
    scienceqa_table,
)

DATASETS = {
    "scienceqa": load_scienceqa,
    "coco": load_coco_captions,
    "llava_instruct": load_llava_instruct,
    "easyvqa": load_easyvqa,
}


def load_dataset(name: str, **kwargs) -> list[VLExample]:
    """``load_dataset("scienceqa", root=..., split="train")`` → ``list[VLExample]``."""
    try:
        loader = DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(sorted(DATASETS))}") from None
    return loader(**kwargs)


__all__ = [
    "VLExample",
    "ImageError",
    "load_image",
    "check_image",
    "filter_loadable",
    "load_scienceqa",
    "build_scienceqa_prompt",
    "parse_answer_letter",
    "scienceqa_table",
    "format_scienceqa_table",
    "PROMPT_FORMATS",
    "SCIENCEQA_COLUMNS",
    "load_coco_captions",
    "score_captions",
    "DEFAULT_CAPTION_PROMPT",
    "load_llava_instruct",
    "load_easyvqa",
    "score_exact_match",
    "normalize_answer",
    "question_type",
    "DATASETS",
    "load_dataset",
]
