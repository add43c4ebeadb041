"""Parameter-free cross-attention with adaptive fusion (SPEC §1).

    S = silu(n) Kᵀ                (T × N_v, no softmax, no scaling)
    drop scores strictly below the one at ascending sorted index ⌊γ·N_v⌋
    F(n) = (M ⊙ S) U

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


def cross_attention_scores(query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """S = silu(query) · keysᵀ for query (B, T, d) and keys (B, N, d) → (B, T, N)."""
    return torch.matmul(F.silu(query), keys.transpose(-1, -2))


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
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, gamma: float
) -> torch.Tensor:
    """F(n) = (M ⊙ silu(n)Kᵀ) U: (B, T, d), (B, N, d), (B, N, d) → (B, T, d)."""
    scores = cross_attention_scores(query, keys.to(query.dtype))
    scores = adaptive_drop_(scores, gamma)
    return torch.matmul(scores, values.to(query.dtype))
