"""Fusion methods, selectable by name (`method: ademvl | bottleneck | lavin | memvp | llava-lora`)."""
from __future__ import annotations

from .ademvl import AdemVL, AdemVLSettings
from .base import FusionMethod, VisualInputs
from .bottleneck import Bottleneck, BottleneckSettings
from .lavin import Lavin, LavinSettings
from .llava_lora import LlavaLora, LlavaLoraSettings
from .memvp import MemVP, MemVPSettings

METHODS: dict[str, type[FusionMethod]] = {
    cls.name: cls for cls in (AdemVL, Bottleneck, Lavin, MemVP, LlavaLora)
}


def method_class(name: str) -> type[FusionMethod]:
    if name not in METHODS:
        raise ValueError(f"unknown method '{name}'; available: {sorted(METHODS)}")
    return METHODS[name]


__all__ = ["METHODS", "method_class", "FusionMethod", "VisualInputs", "AdemVL", "AdemVLSettings",
           "Bottleneck", "BottleneckSettings", "Lavin", "LavinSettings", "MemVP", "MemVPSettings",
           "LlavaLora", "LlavaLoraSettings"]
