"""What `ademvl compare` runs: the five methods, the Table VI ablations of ADEM-VL and its design space
(Tables VII–IX: where the cross-attention reads and adds, the projection φ, the multiscale prompt), by name.

A variant is a method plus settings laid over the demo's (`demo_method_config`), so that the
methods and the ablations go through one pipeline and one results table side by side. Where the paper
reports the same row (ScienceQA average, LLaMA-7B), the variant carries it (`paper`, `paper_row`): a
reference for the order of the rows, not a number an easy-VQA accuracy can be held against.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

# ADEM-VL's α and β as the demo runs them (the paper's), and the best found in docs/demo.md
# (runs a1, R5: α = 1 at 4,000–6,000 questions, within about a point of α = 0.1).
PAPER_ALPHA, PAPER_BETA = 0.1, 0.01
BEST_ALPHA, BEST_BETA = 1.0, 0.01


# The paper's visual prompt sizes are tokens of ViT-L/14's 16×16 patch grid (256, 64, 16: the grid, halved,
# quartered per side); on another tower each keeps its share of the side.
PAPER_GRID = 16


DEMO_GRID = 8  # the demo's easy-VQA tower: 64 px in patches of 8


def paper_scales(grid: int, *paper_tokens: int) -> list[int]:
    """The paper's prompt sizes on a grid×grid tower: side ⌊grid·s/16⌋ for a paper side s (at least 1), so
    256 → grid², 64 → (grid/2)², 16 → (grid/4)²; on a 16×16 grid exactly the paper's. The demo's default
    (grid², (grid/2)², `demo_method_config`) is the paper's (256, 64) this way, and the paper's sizes stay
    apart (on 8×8, keeping 64 as it is would make it the unpooled grid, the 256 row)."""
    sides = [max(grid * math.isqrt(t) // PAPER_GRID, 1) for t in paper_tokens]
    return [side * side for side in sides]


@dataclass(frozen=True)
class Variant:
    name: str
    method: str
    about: str
    settings: Callable[[object, dict], dict] = lambda tower, best: {}  # (tower, best α/β) → settings
    paper: float | None = None  # the paper's ScienceQA average (%, LLaMA-7B) for this row, where it has one
    paper_row: str = ""         # which table and row that is

    def method_config(self, tower, best: dict | None = None) -> dict:
        """The method's settings for this tower: the demo's, with this variant's on top."""
        from ..demo import demo_method_config

        return {**demo_method_config(self.method, tower), **self.settings(tower, best or {})}


def _placement(query_from: str, add_to: str, paper: float) -> Variant:
    """A Table VII row: the cross-attention's query read at `query_from`, its result added at `add_to`."""
    where = {"attn_in": "MHSA (in)", "attn_out": "MHSA (out)", "mlp_in": "MLP (in)", "mlp_out": "MLP (out)"}
    row = f"Table VII: query from {where[query_from]}, add to {where[add_to]}"
    return Variant(f"ademvl-{query_from.replace('_', '-')}-to-{add_to.replace('_', '-')}", "ademvl", row,
                   lambda tower, best: {"query_from": query_from, "add_to": add_to}, paper, row)


def _projection(name: str, label: str, formula: str, paper: float) -> Variant:
    """A Table VIII row: φ of Eq. 3 on the query and the keys."""
    row = f"Table VIII: {label} ({formula})"
    return Variant(f"ademvl-phi-{name.replace('_', '-')}", "ademvl", row,
                   lambda tower, best: {"feature_map": name}, paper, row)


def _prompt(pooling: str, paper_tokens: tuple[int, ...], paper: float) -> Variant:
    """A Table IX row: the multiscale prompt pooled by `pooling` to the paper's sizes, mapped onto the tower."""
    sizes = ", ".join(map(str, paper_tokens))
    row = f"Table IX: {pooling} pooling, {'concat(' + sizes + ')' if len(paper_tokens) > 1 else sizes}"
    here = ", ".join(map(str, paper_scales(DEMO_GRID, *paper_tokens)))
    about = (f"{row} tokens of ViT-L's 16×16 grid; here the same shares of the tower's grid "
             f"({here} on the demo's {DEMO_GRID}×{DEMO_GRID})")
    return Variant(f"ademvl-{pooling}-{'-'.join(map(str, paper_tokens))}", "ademvl", about,
                   lambda tower, best: {"scales": paper_scales(tower.grid, *paper_tokens), "pooling": pooling},
                   paper, row)


_ALL = [
    Variant("ademvl", "ademvl", f"full ADEM-VL (α {PAPER_ALPHA:g}, β {PAPER_BETA:g}, γ 0.1: the paper's values)",
            paper=93.85, paper_row="Tables I, VI–IX: ADEM-VL (MLP in → MLP out, SiLU, avg pooling 256 + 64)"),
    Variant("bottleneck", "bottleneck", "Bottleneck Adapter"),
    Variant("lavin", "lavin", "LaVIN", paper=89.41, paper_row="Table I: LaVIN, LLaMA-7B"),
    Variant("memvp", "memvp", "MemVP", paper=93.07, paper_row="Table I: MemVP, LLaMA-7B"),
    Variant("llava-lora", "llava-lora", "LLaVA-style visual tokens + LoRA", paper=90.85,
            paper_row="Table I: LLaVA-LoRA, LLaMA-7B"),
    Variant("ademvl-no-cls", "ademvl", "without the [cls] input token", lambda tower, best: {"use_cls": False},
            paper=92.97, paper_row="Table X: 0 visual tokens, no [cls] token"),
    Variant("ademvl-single-scale", "ademvl", "single scale: the patch grid only (N_v = grid²); "
            "Table IX: no pooling, 256 (ViT-L's whole grid)",
            lambda tower, best: {"scales": [tower.grid * tower.grid]},
            paper=93.70, paper_row="Table IX: no pooling, 256"),
    Variant("ademvl-no-drop", "ademvl", "without the adaptive drop (γ = 0)", lambda tower, best: {"gamma": 0.0},
            paper=93.47, paper_row="Table VI: + multiscale VP, before + adaptive fusion"),
    Variant("ademvl-no-fusion", "ademvl", "without the per-layer fusion: the [cls] token only",
            lambda tower, best: {"fusion": False}),
    Variant("ademvl-best-alpha-beta", "ademvl", "α/β at the best found instead of the paper's",
            lambda tower, best: {"alpha": best.get("alpha", BEST_ALPHA), "beta": best.get("beta", BEST_BETA)}),
    # Post-norm blocks (Gemma 2/3, OLMo 2): the fused term added before the post-feed-forward norm instead of
    # after it (ADEM-VL's default there, docs/methods.md); the same model as "ademvl" on pre-norm LLMs.
    Variant("ademvl-add-before-post-norm", "ademvl", "α·F(n) added to the MLP output before the block's "
            "post-feed-forward norm (post-norm LLMs; elsewhere the same as ademvl)",
            lambda tower, best: {"add_before_post_norm": True}),
    # Table VII (the default MLP in → MLP out is "ademvl")
    _placement("attn_in", "attn_in", 92.19),
    _placement("attn_in", "attn_out", 93.18),
    _placement("attn_out", "attn_out", 92.00),
    _placement("mlp_in", "mlp_in", 91.77),
    _placement("mlp_out", "mlp_out", 92.27),
    # Table VIII (the default SiLU is "ademvl")
    _projection("none", "None", "x → x", 92.16),
    _projection("softmax", "Softmax", "x → softmax(x)", 79.42),
    _projection("relu", "ReLU", "x → relu(x)", 91.99),
    _projection("elu", "ELU", "x → elu(x)", 92.45),
    _projection("silu_positive", "SiLU (positive)", "x → silu(x) − min(x)", 38.58),
    # Table IX (no pooling, 256, is "ademvl-single-scale"; avg concat(256, 64), the default, is "ademvl")
    _prompt("avg", (64,), 92.82),
    _prompt("avg", (16,), 91.65),
    _prompt("avg", (64, 16), 93.24),
    _prompt("avg", (256, 16), 93.65),
    _prompt("avg", (256, 64, 16), 93.59),
    _prompt("max", (256, 64), 93.55),
]
VARIANTS: dict[str, Variant] = {v.name: v for v in _ALL}
GROUPS: dict[str, list[str]] = {
    "methods": ["ademvl", "bottleneck", "lavin", "memvp", "llava-lora"],
    "ablations": ["ademvl", "ademvl-no-cls", "ademvl-single-scale", "ademvl-no-drop", "ademvl-no-fusion",
                  "ademvl-best-alpha-beta"],
}
GROUPS["table7"] = ["ademvl-attn-in-to-attn-in", "ademvl-attn-in-to-attn-out", "ademvl-attn-out-to-attn-out",
                     "ademvl-mlp-in-to-mlp-in", "ademvl", "ademvl-mlp-out-to-mlp-out"]
GROUPS["table8"] = ["ademvl-phi-none", "ademvl-phi-softmax", "ademvl-phi-relu", "ademvl-phi-elu", "ademvl",
                    "ademvl-phi-silu-positive"]
GROUPS["table9"] = ["ademvl-single-scale", "ademvl-avg-64", "ademvl-avg-16", "ademvl-avg-64-16", "ademvl-avg-256-16",
                    "ademvl", "ademvl-avg-256-64-16", "ademvl-max-256-64"]
GROUPS["all"] = list(dict.fromkeys(GROUPS["methods"] + GROUPS["ablations"]))  # the design-space tables: by name


def parse_variants(text: str | list[str]) -> list[str]:
    """'methods,ademvl-no-cls' → variant names in order, each once; groups: methods, ablations, table7,
    table8, table9 (the paper's design-space tables), all (methods and ablations)."""
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
    """The plots to draw: one group's when every name is in it, methods and ablations apart when both are
    asked for, else one of everything."""
    for group in ("methods", "ablations", "table7", "table8", "table9"):
        if set(names) <= set(GROUPS[group]):
            return {group: list(names)}
    parts = {g: [n for n in names if n in GROUPS[g]] for g in ("methods", "ablations")}
    if all(len(p) > 1 for p in parts.values()) and set(names) <= set(GROUPS["all"]):
        return parts
    return {"all": list(names)}
