"""Adapter directories on tiny backbones saved to disk (LLM + tokenizer, vision tower + image processor),
as `save_adapter` writes them: what transformers' Auto classes and pipeline are given in the tests."""
from __future__ import annotations

import torch

from ademvl.model import VLModel
from ademvl.prompting import PromptSpec
from tiny import tiny_image_processor, tiny_llm, tiny_tokenizer, tiny_vision

# A ChatML-like template over the tiny tokenizer's own special tokens.
CHAT_TEMPLATE = ("{% for m in messages %}{{ '<s>' + m['role'] + '\n' + m['content'] + '</s>\n' }}{% endfor %}"
                 "{% if add_generation_prompt %}{{ '<s>assistant\n' }}{% endif %}")
TEMPLATE = "Q: {prompt}\nA:"


def tiny_chat_tokenizer():
    tok = tiny_tokenizer()
    tok.chat_template = CHAT_TEMPLATE
    return tok


def save_backbones(root, seed: int = 0):
    """root/llm (LLM + a tokenizer with a chat template), root/vision (tower + image processor)."""
    tok = tiny_chat_tokenizer()
    tiny_llm("llama", seed, vocab=len(tok)).save_pretrained(root / "llm")
    tok.save_pretrained(root / "llm")
    tiny_vision("clip", seed + 1).save_pretrained(root / "vision")
    tiny_image_processor(32).save_pretrained(root / "vision")
    return root / "llm", root / "vision"


def save_tiny_adapter(root, name: str = "adapter", method: str = "ademvl", layout: str = "plain",
                      template: str | None = TEMPLATE, seed: int = 0, **settings):
    """An adapter (weights made non-zero so the image matters) saved under root/name, on root's backbones."""
    llm, vision = (root / "llm", root / "vision") if (root / "llm").is_dir() else save_backbones(root, seed)
    if method == "ademvl":
        settings.setdefault("scales", (16, 4))
    model = VLModel.from_backbones(llm, vision, method=method, prompt=PromptSpec(template, layout), **settings)
    torch.manual_seed(seed + 2)
    with torch.no_grad():
        for p in model.trainable_parameters().values():
            if not p.abs().any():
                p.normal_(0, 0.5)
    model.save_adapter(root / name)
    return root / name
