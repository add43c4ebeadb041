"""Command-line helpers shared by the sub-commands."""
from __future__ import annotations

import argparse

import yaml


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
    """`key=value` strings → dict, values parsed as YAML (`scales=[256,64]`, `use_cls=false`)."""
    result = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"override '{item}' is not of the form key=value")
        key, value = item.split("=", 1)
        result[key.strip()] = yaml.safe_load(value)
    return result
