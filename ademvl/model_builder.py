"""A `VLModel` from a recipe's model section: its backbones and method, the trainable weights in fp32,
and what the adapter records of how it is prompted (template, layout, the official layout's policy)."""
from __future__ import annotations

import torch

from .recipes import DataSection, Recipe


def question_template(data: DataSection) -> str | None:
    """How this dataset wraps one question ("{prompt}" marks it), recorded with the adapter so that
    `generate`/`viz` ask the trained model in the shape it learnt. None where a prompt is built from
    several fields (ScienceQA) or holds no question (COCO captions)."""
    if data.dataset == "easyvqa":
        from .data.easyvqa import DEFAULT_VQA_PROMPT

        return (data.prompt or DEFAULT_VQA_PROMPT).replace("{question}", "{prompt}")
    if data.dataset == "llava_instruct":
        from .data.llava_instruct import QUESTION_TEMPLATE

        return QUESTION_TEMPLATE
    return None


def apply_prompt_policy(model, recipe: Recipe) -> None:
    """Record on `model.config` how it is prompted: the dataset's question template and the prompt layout;
    with `model.official`, the official ADEM-VL layout and preprocessing (the collator takes them from
    the config), which only method ademvl has."""
    m = recipe.model
    model.config.prompt_template = question_template(recipe.data)
    model.config.prompt_layout = m.prompt_layout
    if m.official:
        from .official import OFFICIAL_TASKS, task_for_dataset

        if m.method != "ademvl":
            raise ValueError(f"model.official is the official ADEM-VL layout: it needs method ademvl, not {m.method}")
        model.config.official = task_for_dataset(recipe.data.dataset)
        model.config.prompt_template = OFFICIAL_TASKS[model.config.official].prompt_template


def build_model(recipe: Recipe):
    """The recipe's backbones + method, trainable weights in fp32 (demo aliases already resolved:
    `resolve_backbones`)."""
    from .model import VLModel

    m = recipe.model
    extra = {"quantization": m.quantization} if m.quantization else {}
    model = VLModel.from_backbones(m.llm, m.vision, method=m.method, method_config=dict(m.method_config),
                                   dtype=m.dtype, **extra)
    for p in model.trainable_parameters().values():
        if p.dtype != torch.float32:
            p.data = p.data.float()
    apply_prompt_policy(model, recipe)
    return model
