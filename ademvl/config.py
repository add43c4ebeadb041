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
        if f.name in values:
            values[f.name] = _coerce(f, values[f.name], where)
    return cls(**values)


def _coerce(field: dataclasses.Field, value: Any, where: str) -> Any:
    """Bring a YAML/CLI value to the field's type, or name the key and the type it needs.

    YAML and JSON give lists where the dataclasses hold tuples, and `scales=256`
    on the command line means the one-element tuple `(256,)`.
    """
    default = field.default
    annotation = str(field.type)

    def wrong(expected: str) -> ConfigError:
        from .safeyaml import shown

        return ConfigError(f"{where}: '{field.name}' must be {expected}, got {shown(value)}")

    if value is None:
        if default is None or "None" in annotation:
            return None
        raise wrong(f"a value (default {default!r})")
    if annotation.startswith("tuple"):
        items = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        if "int" in annotation and not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            raise wrong("an integer or a list of integers")
        if "str" in annotation and not all(isinstance(v, str) for v in items):
            raise wrong("a name or a list of names")
        return items
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if isinstance(default, int) and "float" not in annotation:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
        return value
    if isinstance(default, float) or "float" in annotation:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong("a number")
        return float(value)
    if isinstance(default, str) and not isinstance(value, str):
        raise wrong("a string")
    return value


class VLConfig(PreTrainedConfig):
    r"""Config of a frozen LLM + frozen vision tower joined by a tuning method.

    Args:
        text_config: the causal LM's config.
        vision_config: the vision tower's config.
        method: name of the fusion method (`ademvl`, ...).
        method_config: that method's hyperparameters (see `ademvl.methods`).
        llm_name_or_path / vision_name_or_path: where the backbones came from,
            so a saved adapter can find them again.
        prompt_layout: "plain" (the paper's `[bos] "Image: " … prompt " " answer`) or "chat"
            (through the LLM's chat template); training and generation use the same.
        prompt_template: how training wrapped a bare question ("{prompt}" marks it),
            so `generate`, `viz` and the harness adapters ask in the shape the model learnt.
        official: None for the library's own layout; else the official ADEM-VL task
            ("scienceqa", "caption", "instruction") whose preprocessing, prompt layout and
            evaluation protocol the model expects (`ademvl.official`): converted checkpoints.
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
    prompt_template: str | None = None
    prompt_layout: str = "plain"
    official: str | None = None
    tie_word_embeddings: bool = False
