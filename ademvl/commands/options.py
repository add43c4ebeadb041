"""Command-line helpers shared by the sub-commands."""
from __future__ import annotations

import argparse

from ..safeyaml import parse_overrides  # noqa: F401  (lives with the YAML limits; the commands import it here)


def int_at_least(minimum: int, what: str | None = None):
    """argparse type: an integer ≥ `minimum` (argparse names the option in the error); with `what`, the
    error names it too ("expected seed (an integer ≥ 0)", "seeds must be ≥ 0")."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            wanted = (f"{what} (an integer ≥ {minimum})" if what
                      else "a positive integer" if minimum == 1 else f"an integer ≥ {minimum}")
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{what}s must be ≥ {minimum}, got {value}" if what
                                             else f"must be at least {minimum}, got {value}")
        return value
    return parse


def non_negative(what: str):
    """argparse type: an integer ≥ 0, the error naming `what`."""
    return int_at_least(0, what)


positive_int = int_at_least(1)  # an integer ≥ 1


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def int_list(kind):
    """argparse type: comma-separated integers of `kind`, each once, in the order given."""
    def parse(text: str) -> list[int]:
        values = [kind(part.strip()) for part in text.split(",") if part.strip()]
        if not values:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
        return list(dict.fromkeys(values))
    return parse


def count_or_all(text: str) -> int | None:
    """argparse type: 'all' (None) or a positive integer."""
    return None if text == "all" else positive_int(text)
