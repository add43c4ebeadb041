"""Sizes read from a file (an adapter's JSON, an official checkpoint's args) bounded by the backbones' own.

A method allocates its modules from integer settings (`adapter_dim`, `scales`,
`num_slots`, ...). An adapter file saying `adapter_dim: 1099511627776` would
otherwise reach `torch.empty` and die in an allocation traceback; no sensible
setting is wider than a few times the widest thing the backbones have.
"""
from __future__ import annotations

import dataclasses

from .config import ConfigError

LAYER_FIELDS = ("feature_layer",)  # indices into the vision tower's blocks (negative: from the end)
FLOOR = 4096  # below this, any size is allowed (tiny test backbones still take the paper's 256-token scales)


def size_limit(llm_config, vision_config) -> int:
    """The largest integer size a method setting may have on these backbones."""
    text = llm_config.get_text_config()
    patches = (getattr(vision_config, "image_size", 0) // max(getattr(vision_config, "patch_size", 1) or 1, 1)) ** 2
    widest = max(getattr(text, "hidden_size", 0) or 0, getattr(vision_config, "hidden_size", 0) or 0, patches + 1)
    return max(FLOOR, 16 * widest)


def check_sizes(settings, llm_config, vision_config, where: str) -> None:
    """Raise `ConfigError` for an integer setting (or list of them) below 1 or over `size_limit`, and for a
    layer index outside the vision tower."""
    limit = size_limit(llm_config, vision_config)
    layers = getattr(vision_config, "num_hidden_layers", None)
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        items = value if isinstance(value, tuple) else (value,)
        numbers = [v for v in items if isinstance(v, int) and not isinstance(v, bool)]
        if not numbers:
            continue
        if field.name in LAYER_FIELDS:
            if layers and not all(-layers <= v < layers for v in numbers):
                raise ConfigError(f"{where}: '{field.name}' = {value} is not a block of the vision tower "
                                  f"({layers} blocks: -{layers} to {layers - 1})")
            continue
        bad = [v for v in numbers if not 1 <= v <= limit]
        if bad:
            raise ConfigError(f"{where}: '{field.name}' = {str(bad[0])[:40]} is out of range for these backbones "
                              f"(1 to {limit}: 16x their widest size)")
