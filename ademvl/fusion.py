"""Parameter-free cross-attention with adaptive fusion (SPEC §1).

    S = φ(n) Kᵀ                   (T × N_v, no softmax over the scores, no scaling)
    drop scores strictly below the one at ascending sorted index ⌊γ·N_v⌋
    F(n) = (M ⊙ S) U

φ is the non-parameterised projection of the paper's Eq. 3: silu, as the paper and the
official code apply it, or one of the alternatives of its Table VIII (`FEATURE_MAPS`).
The keys K = φ(V + E1) are projected with the same φ by the method that builds them.

The threshold is found with `kthvalue` (a selection, not a full sort) and the
mask is applied in place, so no full-size copy of the scores is kept.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def drop_index(gamma: float, num_visual: int) -> int:
    """Ascending sorted index of the threshold score: ⌊γ·N_v⌋ as the reference computes it."""
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"drop ratio gamma must be in [0, 1), got {gamma}")
    return int(gamma * num_visual)


def _silu_positive(x: torch.Tensor) -> torch.Tensor:
    return F.silu(x) - x.amin(dim=-1, keepdim=True)


# Table VIII's projections, by the names the `feature_map` setting takes.
FEATURE_MAPS = {
    "silu": F.silu,
    "none": lambda x: x,
    "softmax": lambda x: torch.softmax(x, dim=-1),
    "relu": F.relu,
    "elu": F.elu,
    "silu_positive": _silu_positive,
}


def check_feature_map(name: str) -> str:
    """`name` if it is one of `FEATURE_MAPS`, else a one-line ValueError naming the choices."""
    if name not in FEATURE_MAPS:
        raise ValueError(f"feature_map must be one of {', '.join(FEATURE_MAPS)}, got {name!r}")
    return name


def feature_map(x: torch.Tensor, name: str = "silu") -> torch.Tensor:
    """φ(x) of Eq. 3, applied to each token's feature vector on its own (the last axis).

    Table VIII writes softmax(x) and silu(x) − min(x) without an axis, and the official code
    has only silu (element-wise, on the query and on V + E1). Both are taken over the feature
    axis of each token (softmax over its d features; min(x) the smallest of its d raw, un-siLU'd
    features, as the table writes it): a map of one token's vector like the element-wise ones.
    Over the sequence axis, the query of one text token would depend on later tokens (no longer
    causal, and cached decoding would differ from a full forward)."""
    return FEATURE_MAPS[check_feature_map(name)](x)


def cross_attention_scores(query: torch.Tensor, keys: torch.Tensor, feature_map_name: str = "silu") -> torch.Tensor:
    """S = φ(query) · keysᵀ for query (B, T, d) and keys (B, N, d) → (B, T, N); φ = silu by default."""
    return torch.matmul(feature_map(query, feature_map_name), keys.transpose(-1, -2))


def adaptive_drop_(scores: torch.Tensor, gamma: float) -> torch.Tensor:
    """Zero, in place, each row's scores strictly below its ⌊γ·N⌋-th smallest one."""
    index = drop_index(gamma, scores.shape[-1])
    if index == 0:
        return scores  # the threshold is the minimum: nothing lies strictly below it
    with torch.no_grad():
        threshold = scores.kthvalue(index + 1, dim=-1, keepdim=True).values
        dropped = scores < threshold
    return scores.masked_fill_(dropped, 0.0)


def adaptive_fusion(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, gamma: float, feature_map_name: str = "silu"
) -> torch.Tensor:
    """F(n) = (M ⊙ φ(n)Kᵀ) U: (B, T, d), (B, N, d), (B, N, d) → (B, T, d); φ = silu by default."""
    scores = cross_attention_scores(query, keys.to(query.dtype), feature_map_name)
    scores = adaptive_drop_(scores, gamma)
    return torch.matmul(scores, values.to(query.dtype))
