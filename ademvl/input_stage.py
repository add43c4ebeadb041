"""How input-stage tokens enter the LLM input, with no Python branch on tensor values.

    [pad…] [modality placeholder] [bos] "Image: " [visual placeholders] "\n" prompt …

Both kinds of placeholder are ordinary ids in `input_ids`, so the KV cache always holds
exactly the tokens of `input_ids`. Their embeddings are written over, in the forward that
holds the prompt: visual tokens from each row's `image_slot`, the modality token (LaVIN /
Bottleneck Adapter's `u_m`) at each row's first attended column. The references bar every
later token from attending to the modality token; that is a transformers mask function
(`hide_prefix`) combined with the causal and padding masks by `create_causal_mask` (and by
`create_sliding_window_causal_mask` for the sliding-window layers, `masks_hiding_prefix`).
"""
from __future__ import annotations

import torch


def write_tokens(embeds: torch.Tensor, tokens: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """Embeddings with row b's `tokens[b]` written from column `start[b]` on (-1: none).

    embeds (B, T, d), tokens (B, n, d), start (B,). Columns past T are dropped.
    """
    n = tokens.shape[1]
    start = start.to(embeds.device).long().view(-1, 1)
    offset = torch.arange(embeds.shape[1], device=embeds.device).view(1, -1) - start  # (B, T)
    inside = (start >= 0) & (offset >= 0) & (offset < n)
    index = offset.clamp(0, n - 1).unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
    placed = tokens.to(embeds.device, embeds.dtype).gather(1, index)
    return torch.where(inside.unsqueeze(-1), placed, embeds)


def first_attended_columns(attention_mask: torch.Tensor | None, batch: int, device) -> torch.Tensor:
    """(B,) column of each row's first real token: 0 without a mask or with right padding."""
    if attention_mask is None or attention_mask.dim() != 2:
        return torch.zeros(batch, dtype=torch.long, device=device)
    return attention_mask.to(device).long().argmax(dim=-1)  # argmax returns the first maximum


def hide_prefix(start: torch.Tensor, n_prefix: int):
    """Mask function: no token after the prefix [start, start + n) attends to it; the prefix
    itself attends causally as usual. Indices are absolute (cache included), as transformers'."""

    def mask(batch_idx, head_idx, q_idx, kv_idx):
        first = start[batch_idx]
        in_prefix = (kv_idx >= first) & (kv_idx < first + n_prefix)
        return ~in_prefix | (q_idx < first + n_prefix)

    return mask


def masks_hiding_prefix(config, **mask_kwargs):
    """The attention mask(s) the LLM takes, each combined with `and_mask_function` (in `mask_kwargs`):
    one per layer kind where some layers attend through a sliding window (Gemma 2/3, gpt-oss: a dict,
    as those models build it themselves), the sliding one where all do (Mistral, Mixtral with a
    window), else the causal one. Only the LLM's own mask functions build them."""
    from transformers.masking_utils import create_causal_mask, create_sliding_window_causal_mask

    config = config.get_text_config()
    kinds = set(getattr(config, "layer_types", None) or ())
    if "sliding_attention" in kinds and len(kinds) > 1:
        return {"full_attention": create_causal_mask(config=config, **mask_kwargs),
                "sliding_attention": create_sliding_window_causal_mask(config=config, **mask_kwargs)}
    if kinds == {"sliding_attention"} or (not kinds and getattr(config, "sliding_window", None) is not None):
        return create_sliding_window_causal_mask(config=config, **mask_kwargs)
    return create_causal_mask(config=config, **mask_kwargs)
