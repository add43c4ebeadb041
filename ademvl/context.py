"""How many tokens a prompt may have: the LLM's own context, less what generation needs.

A prompt past the context either crashes (GPT-2's learned positions: IndexError)
or runs on positions the model never saw (RoPE models); the collator instead
keeps the end of such a prompt (where the question sits) and says so once.
"""
from __future__ import annotations

_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def llm_context_length(model) -> int | None:
    """Positions the LLM was built for (`max_position_embeddings`, GPT-2's `n_positions`, ...), None if unknown."""
    config = model.llm.config.get_text_config()
    for key in _CONTEXT_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def prompt_token_limit(model, reserve: int = 0, cap: int | None = None, option: str = "--max-new-tokens") -> int | None:
    """Most tokens `input_ids` may hold (the method's placeholders included): the context less
    `reserve` (the new tokens of generation), at most `cap` (e.g. train.max_length). None: no limit
    known or given. `option` names what to lower when `reserve` leaves no room."""
    context = llm_context_length(model)
    if context is None:
        return cap
    room = context - reserve
    if room < 1:
        raise ValueError(f"{option}={reserve} leaves no room for the prompt in the LLM's context of {context} tokens")
    return room if cap is None else min(cap, room)
