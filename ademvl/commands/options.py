"""Command-line helpers shared by the sub-commands."""
from __future__ import annotations

import argparse

import yaml

from ..safeyaml import load_yaml, yaml_problem


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1 (argparse names the option in the error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def count_or_all(text: str) -> int | None:
    """argparse type: 'all' (None) or a positive integer."""
    return None if text == "all" else positive_int(text)


def parse_overrides(items: list[str] | None) -> dict:
    """`key=value` strings → dict, values parsed as YAML (`scales=[256,64]`, `use_cls=false`), bounded
    (`ademvl.safeyaml`): no Python tags, no alias bombs."""
    result = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"override '{item}' is not of the form key=value")
        key, value = item.split("=", 1)
        try:
            result[key.strip()] = load_yaml(value, f"override '{key.strip()}'")
        except yaml.YAMLError as error:  # e.g. a !!python/... tag: refused, never built
            raise ValueError(f"override '{key.strip()}' is not a plain YAML value: {yaml_problem(error)}") from None
    return result
