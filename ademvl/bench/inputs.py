"""Synthetic benchmark batches: every row has an image, the text has a fixed length,
and each method's extra input tokens come on top of that text: its prefix placeholders
first, then the visual ones after the first text token (bos)."""
from __future__ import annotations

import torch


def extra_tokens(model) -> int:
    """All input tokens a method adds per image sample: visual tokens + prefix tokens (LaVIN's
    modality token)."""
    method = model.method
    return int(getattr(method, "extra_input_tokens", method.num_input_tokens))


def image_size_of(model) -> int:
    return int(model.vision.image_size)


def synthetic_batch(model, batch_size: int, text_len: int, device="cpu", seed: int = 0) -> dict:
    """Model inputs for `text_len` text tokens + the method's visual and prefix placeholders."""
    extra = int(model.method.num_input_tokens)
    prefix = int(model.method.num_prefix_tokens)
    length = text_len + extra + prefix
    vocab = model.llm.config.get_text_config().vocab_size
    size = image_size_of(model)
    device = torch.device(device)
    if device.type == "meta":
        ids = torch.zeros(batch_size, length, dtype=torch.long, device=device)
        pixels = torch.zeros(batch_size, 3, size, size, device=device)
    else:
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(3, vocab, (batch_size, length), generator=g).to(device)
        pixels = torch.randn(batch_size, 3, size, size, generator=g).to(device)
    slot = prefix + 1 if extra > 0 else -1
    return {
        "input_ids": ids,
        "attention_mask": torch.ones(batch_size, length, dtype=torch.long, device=device),
        "pixel_values": pixels,
        "has_image": torch.ones(batch_size, dtype=torch.bool, device=device),
        "image_slot": torch.full((batch_size,), slot, dtype=torch.long, device=device),
    }


def text_only(inputs: dict, extra: int, prefix: int = 0) -> dict:
    """The same text for the bare LLM: the method's prefix and visual-token positions removed."""
    ids = inputs["input_ids"]
    if extra or prefix:
        ids = torch.cat([ids[:, prefix:prefix + 1], ids[:, prefix + 1 + extra:]], dim=1)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def answer_targets(batch_size: int, answer_len: int, vocab: int, device="cpu") -> torch.Tensor:
    """Targets of the last `answer_len` positions (the loss is over the answer only)."""
    device = torch.device(device)
    if device.type == "meta":
        return torch.zeros(batch_size, answer_len, dtype=torch.long, device=device)
    g = torch.Generator().manual_seed(1)
    return torch.randint(3, vocab, (batch_size, answer_len), generator=g).to(device)
