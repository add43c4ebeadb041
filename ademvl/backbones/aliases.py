"""Names of the embedded demo backbones, usable wherever a recipe names a backbone path.

`model.llm: smollm2` (or `gemma3-270m`) / `model.vision: easyvqa-clip` stand for the cached directories
that `smollm2_path` (`gemma3_path`) / `tiny_clip_path` build on first use (unless a path of that name exists).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

# alias → the function of `ademvl.backbones` that builds (or finds) its directory
BACKBONE_ALIASES = {"smollm2": "smollm2_path", "gemma3-270m": "gemma3_path", "easyvqa-clip": "tiny_clip_path"}
LLM_ALIASES = ("smollm2", "gemma3-270m")  # the demo's language models, the first its default


def resolve_alias(name):
    """The directory of demo backbone `name`, or `name` itself where it is no alias or such a path exists."""
    if name in BACKBONE_ALIASES and not Path(name).exists():
        from .. import backbones

        return str(getattr(backbones, BACKBONE_ALIASES[name])())
    return name


def resolve_backbones(recipe):
    """`recipe` with the demo aliases in model.llm / model.vision replaced by their cached directories
    (the same recipe object when it names none)."""
    m = recipe.model
    if m.llm not in BACKBONE_ALIASES and m.vision not in BACKBONE_ALIASES:
        return recipe
    model = dataclasses.replace(m, llm=resolve_alias(m.llm), vision=resolve_alias(m.vision))
    return dataclasses.replace(recipe, model=model)
