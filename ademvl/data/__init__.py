"""Dataset layer: every source becomes a list of :class:`VLExample` records.

``load_dataset(name, **kwargs)`` picks a loader by name so configs can name
their data; each loader's own keyword arguments pass straight through.
Each dataset module registers a :class:`DatasetSpec` (``registry.py``), the one
place that knows the dataset; every module of this package is imported here, so
a new dataset is one new file.
"""
from __future__ import annotations

import importlib
import pkgutil

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

from .registry import SPECS, DatasetOptionError, DatasetSpec, OfficialProtocol, dataset_spec, register

for _module in pkgutil.iter_modules(__path__):  # each dataset module registers itself on import
    importlib.import_module(f"{__name__}.{_module.name}")

DATASETS = {name: spec.loader for name, spec in SPECS.items()}  # name -> loader


def load_dataset(name: str, **kwargs) -> list[VLExample]:
    """``load_dataset("scienceqa", root=..., split="train")`` → ``list[VLExample]``."""
    return dataset_spec(name).loader(**kwargs)


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
    "SPECS",
    "DatasetSpec",
    "DatasetOptionError",
    "OfficialProtocol",
    "dataset_spec",
    "register",
]
