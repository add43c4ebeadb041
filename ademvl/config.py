"""Configuration: the Hugging Face config of a vision-language model, and the
hyperparameters of the fusion method it carries.

`VLConfig` is a normal transformers config (so `generate()`, caches and
`save_pretrained` of the config work); the method's own hyperparameters live in
small dataclasses (one per method) that reject unknown keys with a clear error.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec


class ConfigError(ValueError):
    """A configuration value or key is wrong; the message names it."""


def settings_from_dict(cls, values: dict[str, Any] | None, where: str = "method settings"):
    """Build the dataclass `cls` from `values`, naming any unknown key."""
    values = dict(values or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in {where} for {cls.__name__}; valid keys: {sorted(known)}"
        )
    for f in dataclasses.fields(cls):
        # YAML/JSON give lists where the dataclass wants tuples.
        if f.name in values and isinstance(values[f.name], list):
            values[f.name] = tuple(values[f.name])
    return cls(**values)


class VLConfig(PreTrainedConfig):
    r"""Config of a frozen LLM + frozen vision tower joined by a tuning method.

    Args:
        text_config: the causal LM's config.
        vision_config: the vision tower's config.
        method: name of the fusion method (`ademvl`, ...).
        method_config: that method's hyperparameters (see `ademvl.methods`).
        llm_name_or_path / vision_name_or_path: where the backbones came from,
            so a saved adapter can find them again.
    """

    model_type = "ademvl"
    sub_configs_defaults = {
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="clip_vision_model"),
    }

    text_config: dict | PreTrainedConfig | None = None
    vision_config: dict | PreTrainedConfig | None = None
    method: str = "ademvl"
    method_config: dict | None = None
    llm_name_or_path: str | None = None
    vision_name_or_path: str | None = None
    tie_word_embeddings: bool = False
