"""Fusion methods, selectable by name (`method: ademvl | ...`)."""
from __future__ import annotations

from .ademvl import AdemVL, AdemVLSettings
from .base import FusionMethod, FusionState, VisualInputs

METHODS: dict[str, type[FusionMethod]] = {AdemVL.name: AdemVL}


def method_class(name: str) -> type[FusionMethod]:
    if name not in METHODS:
        raise ValueError(f"unknown method '{name}'; available: {sorted(METHODS)}")
    return METHODS[name]


__all__ = ["METHODS", "method_class", "FusionMethod", "FusionState", "VisualInputs", "AdemVL", "AdemVLSettings"]
