"""A `VLModel` from a recipe's model section: its backbones and method, the trainable weights in fp32,
and what the adapter records of how it is prompted (template, layout, the official layout's policy)."""
from __future__ import annotations

import torch

from .prompting import PromptSpec
from .recipes import DataSection, Recipe


def question_template(data: DataSection) -> str | None:
    """How this dataset wraps one question ("{prompt}" marks it), recorded with the adapter so that
    `generate`/`viz` ask the trained model in the shape it learnt. None where a prompt is built from
    several fields (ScienceQA) or holds no question (COCO captions): each dataset's registry entry says."""
    from .data import SPECS
    from .data.registry import dataset_options

    if data.dataset not in SPECS:
        return None
    spec, options = dataset_options(data, strict=False)
    return spec.question_template(options)


def prompt_spec(recipe: Recipe) -> PromptSpec:
    """How a model built from `recipe` is prompted: the dataset's question template and the prompt layout;
    with `model.official`, the official ADEM-VL layout and preprocessing (the collator takes them from
    the config), which only method ademvl has."""
    m = recipe.model
    if not m.official:
        return PromptSpec(question_template(recipe.data), m.prompt_layout)
    if m.method != "ademvl":
        raise ValueError(f"model.official is the official ADEM-VL layout: it needs method ademvl, not {m.method}")
    return PromptSpec.official_for(recipe.data.dataset, m.prompt_layout)


def build_model(recipe: Recipe):
    """The recipe's backbones + method, trainable weights in fp32 (demo aliases already resolved:
    `resolve_backbones`)."""
    from .model import VLModel

    m = recipe.model
    prompt = prompt_spec(recipe)  # refused (method other than ademvl with model.official) before loading
    extra = {"quantization": m.quantization} if m.quantization else {}
    model = VLModel.from_backbones(m.llm, m.vision, method=m.method, method_config=dict(m.method_config),
                                   dtype=m.dtype, prompt=prompt, **extra)
    for p in model.trainable_parameters().values():
        if p.dtype != torch.float32:
            p.data = p.data.float()
    return model
