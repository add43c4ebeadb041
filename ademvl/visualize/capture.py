"""Record what ADEM-VL's adaptive fusion did in each decoder layer (for Fig. 3).

Each decoder block's fusion site (`FusionSite`, wherever `query_from`/`add_to` put it) is
given, for one forward over the whole sequence (no cache), a `read` that records the query it
receives before fusing, so the scores S = φ(n)Kᵀ (φ the site's feature map) and the kept mask
are recomputed with the same functions and rule the fusion uses (`ademvl.fusion`).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..fusion import cross_attention_scores, drop_index


def kept_mask(scores: torch.Tensor, gamma: float) -> torch.Tensor:
    """Boolean mask of the scores `ademvl.fusion.adaptive_drop_` keeps (same threshold rule)."""
    index = drop_index(gamma, scores.shape[-1])
    if index == 0:
        return torch.ones_like(scores, dtype=torch.bool)
    threshold = scores.kthvalue(index + 1, dim=-1, keepdim=True).values
    return scores >= threshold


def fused_layers(model) -> list:
    """The model's fusion sites that add α·F(n) (one per decoder block), in decoder-block order."""
    from ..methods.ademvl import FusionSite

    layers = [m for m in model.llm.modules() if isinstance(m, FusionSite) and m.add is not None]
    if not layers:
        method = getattr(model.config, "method", "?")
        raise ValueError(
            f"model (method '{method}') has no ADEM-VL fusion layers to visualise "
            "(use method ademvl with fusion=true)"
        )
    return layers


@torch.no_grad()
def capture_fusion_scores(model, batch: dict, row: int = 0) -> dict[str, np.ndarray]:
    """One forward of `batch`; per decoder layer, the scores and kept mask of sample `row`.

    Returns {"scores": (L, T, N_v) float32, "kept": (L, T, N_v) bool}, T being the
    batch's sequence length (padding included) and N_v = Σ scales.
    """
    layers = fused_layers(model)
    records: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(layers)

    def recording(index, layer):
        fuse = layer.read

        def read(query, visual):
            scores = cross_attention_scores(query, visual.keys.to(query.dtype), layer.feature_map)[row]
            records[index] = (scores.float().cpu(), kept_mask(scores, layer.gamma).cpu())
            return fuse(query, visual)
        return read

    for i, layer in enumerate(layers):
        layer.read = recording(i, layer)  # an instance attribute over the class's method, for this forward
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    try:
        model(**inputs, logits_to_keep=1)
    finally:
        for layer in layers:
            del layer.read
    if any(r is None for r in records):
        raise ValueError("the forward did not reach every fusion layer with visual keys (no image in the batch?)")
    return {
        "scores": torch.stack([r[0] for r in records]).numpy(),
        "kept": torch.stack([r[1] for r in records]).numpy(),
    }


def select_maps(
    captured: dict[str, np.ndarray], layer: int | str = "mean", tokens: int | list[int] | slice = -1
) -> tuple[np.ndarray, np.ndarray]:
    """Reduce (L, T, N_v) captures to one (N_v,) score vector and kept fraction.

    `layer`: a decoder layer index or "mean"; `tokens`: one position or several
    (averaged). The kept output is the fraction of (layer, token) pairs that kept
    each feature: exactly 0/1 for a single layer and token.
    """
    scores, kept = captured["scores"], captured["kept"].astype(np.float32)
    num_layers, length = scores.shape[:2]
    if layer != "mean":
        if not isinstance(layer, (int, np.integer)) or not -num_layers <= layer < num_layers:
            raise ValueError(f"layer {layer!r} is not 'mean' or an index of the {num_layers} fusion layers")
        scores, kept = scores[layer:layer + 1 or None], kept[layer:layer + 1 or None]
    positions = np.arange(length)[tokens]
    positions = np.atleast_1d(positions)
    if positions.size == 0:
        raise ValueError(f"token selection {tokens!r} is empty for a sequence of {length} tokens")
    return scores[:, positions].mean(axis=(0, 1)), kept[:, positions].mean(axis=(0, 1))


def split_by_scales(vector: np.ndarray, scales) -> list[np.ndarray]:
    """(Σ scales,) → one (side, side) row-major grid per scale, in the prompt's order."""
    vector = np.asarray(vector)
    if vector.shape[-1] != sum(scales):
        raise ValueError(f"{vector.shape[-1]} visual features do not match scales {tuple(scales)} (sum {sum(scales)})")
    grids, start = [], 0
    for scale in scales:
        side = math.isqrt(scale)
        if side * side != scale:
            raise ValueError(f"scale {scale} is not a square number of tokens")
        grids.append(vector[..., start:start + scale].reshape(*vector.shape[:-1], side, side))
        start += scale
    return grids
