"""What `ademvl compare` runs: the five methods and the Table VI ablations of ADEM-VL, by name.

A variant is a method plus settings laid over the demo's (`demo_method_config`), so that the
methods and the ablations go through one pipeline and one results table side by side.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# ADEM-VL's α and β as the demo runs them (the paper's), and the best found in docs/demo.md
# (runs a1, R5: α = 1 at 4,000–6,000 questions, within about a point of α = 0.1).
PAPER_ALPHA, PAPER_BETA = 0.1, 0.01
BEST_ALPHA, BEST_BETA = 1.0, 0.01


@dataclass(frozen=True)
class Variant:
    name: str
    method: str
    about: str
    settings: Callable[[object, dict], dict] = lambda tower, best: {}  # (tower, best α/β) → settings

    def method_config(self, tower, best: dict | None = None) -> dict:
        """The method's settings for this tower: the demo's, with this variant's on top."""
        from ..demo import demo_method_config

        return {**demo_method_config(self.method, tower), **self.settings(tower, best or {})}


_ALL = [
    Variant("ademvl", "ademvl", f"full ADEM-VL (α {PAPER_ALPHA:g}, β {PAPER_BETA:g}, γ 0.1: the paper's values)"),
    Variant("bottleneck", "bottleneck", "Bottleneck Adapter"),
    Variant("lavin", "lavin", "LaVIN"),
    Variant("memvp", "memvp", "MemVP"),
    Variant("llava-lora", "llava-lora", "LLaVA-style visual tokens + LoRA"),
    Variant("ademvl-no-cls", "ademvl", "without the [cls] input token", lambda tower, best: {"use_cls": False}),
    Variant("ademvl-single-scale", "ademvl", "single scale: the patch grid only (N_v = grid²)",
            lambda tower, best: {"scales": [tower.grid * tower.grid]}),
    Variant("ademvl-no-drop", "ademvl", "without the adaptive drop (γ = 0)", lambda tower, best: {"gamma": 0.0}),
    Variant("ademvl-no-fusion", "ademvl", "without the per-layer fusion: the [cls] token only",
            lambda tower, best: {"fusion": False}),
    Variant("ademvl-best-alpha-beta", "ademvl", "α/β at the best found instead of the paper's",
            lambda tower, best: {"alpha": best.get("alpha", BEST_ALPHA), "beta": best.get("beta", BEST_BETA)}),
]
VARIANTS: dict[str, Variant] = {v.name: v for v in _ALL}
GROUPS: dict[str, list[str]] = {
    "methods": ["ademvl", "bottleneck", "lavin", "memvp", "llava-lora"],
    "ablations": ["ademvl", "ademvl-no-cls", "ademvl-single-scale", "ademvl-no-drop", "ademvl-no-fusion",
                  "ademvl-best-alpha-beta"],
}
GROUPS["all"] = list(dict.fromkeys(GROUPS["methods"] + GROUPS["ablations"]))


def parse_variants(text: str | list[str]) -> list[str]:
    """'methods,ademvl-no-cls' → variant names in order, each once; groups: methods, ablations, all."""
    items = text.split(",") if isinstance(text, str) else list(text)
    names: list[str] = []
    for item in filter(None, (i.strip() for i in items)):
        if item in GROUPS:
            names.extend(GROUPS[item])
        elif item in VARIANTS:
            names.append(item)
        else:
            raise ValueError(f"unknown variant '{item}'; available: {', '.join(GROUPS)} (groups), "
                             f"{', '.join(VARIANTS)}")
    if not names:
        raise ValueError("no variants given (e.g. --variants methods,ablations)")
    return list(dict.fromkeys(names))


def groups_of(names: list[str]) -> dict[str, list[str]]:
    """The plots to draw: methods and ablations apart when both are asked for, else one of everything."""
    for group in ("methods", "ablations"):
        if set(names) <= set(GROUPS[group]):
            return {group: list(names)}
    parts = {g: [n for n in names if n in GROUPS[g]] for g in ("methods", "ablations")}
    if all(len(p) > 1 for p in parts.values()) and set(names) <= set(GROUPS["all"]):
        return parts
    return {"all": list(names)}
