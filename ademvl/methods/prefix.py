"""Tokens prepended before [bos] (LaVIN / Bottleneck Adapter's modality token `u_m`).

The model prepends them once, at the first chunk of a sequence, so they live in
the KV cache; the 2-D attention mask every caller passes covers only the real
tokens and is widened here by the prefix columns. The references also bar every
later token from attending to the prefix (`mask[:, :, 1:, 0] = -inf`) while the
prefix attends to itself: that needs a 4-D mask, built here.
"""
from __future__ import annotations

import torch


def widen_mask(attention_mask: torch.Tensor | None, batch: int, real_length: int, n_prefix: int,
               device: torch.device) -> torch.Tensor:
    """2-D mask over the real tokens (None = all real) → mask with `n_prefix` leading ones."""
    if attention_mask is None:
        attention_mask = torch.ones(batch, real_length, dtype=torch.long, device=device)
    ones = attention_mask.new_ones(batch, n_prefix)
    return torch.cat([ones, attention_mask.to(ones.device)], dim=1)


def prefix_barred_mask(mask_2d: torch.Tensor, past_length: int, query_length: int, n_prefix: int,
                       dtype: torch.dtype) -> torch.Tensor:
    """Additive (B, 1, q, kv) mask: causal, padding, and no token after the prefix sees the prefix."""
    device = mask_2d.device
    kv_length = mask_2d.shape[1]
    if kv_length != past_length + query_length:
        raise ValueError(
            f"attention mask covers {kv_length - n_prefix} tokens but the cache and this chunk hold "
            f"{past_length + query_length - n_prefix}"
        )
    q_pos = torch.arange(past_length, past_length + query_length, device=device).view(-1, 1)
    k_pos = torch.arange(kv_length, device=device).view(1, -1)
    allowed = (k_pos <= q_pos) & ~((k_pos < n_prefix) & (q_pos >= n_prefix))
    allowed = allowed.unsqueeze(0) & mask_2d.bool().view(mask_2d.shape[0], 1, kv_length)
    out = torch.zeros(allowed.shape, dtype=dtype, device=device)
    return out.masked_fill_(~allowed, torch.finfo(dtype).min).unsqueeze(1)
