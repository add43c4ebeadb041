"""Command-line helpers shared by the sub-commands."""
from __future__ import annotations

import yaml


def parse_overrides(items: list[str] | None) -> dict:
    """`key=value` strings → dict, values parsed as YAML (`scales=[256,64]`, `use_cls=false`)."""
    result = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"override '{item}' is not of the form key=value")
        key, value = item.split("=", 1)
        result[key.strip()] = yaml.safe_load(value)
    return result
