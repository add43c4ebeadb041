"""Where the parts live inside each supported Hugging Face architecture.

Methods never fork a model file: they wrap modules that these tables locate
(the decoder blocks, each block's MLP, attention and pre-attention norm; the
vision blocks and the final vision norm).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class DecoderLayout:
    layers: str          # dotted path from the *ForCausalLM to the ModuleList of blocks
    mlp: str             # attribute of a block: the feed-forward module, called on the post-attention norm
    attention: str       # attribute of a block: self-attention, called on the pre-attention norm
    attention_norm: str  # attribute of a block: the norm before attention


_LLAMA_LIKE = DecoderLayout("model.layers", "mlp", "self_attn", "input_layernorm")

# Architectures whose block is  h = h + Attn(norm1(h));  h = h + MLP(norm2(h)).
# (Gemma 2/3 and OLMo 2 normalise the MLP output again, so a fusion added to it
# would be renormalised: they are left out on purpose.)
DECODER_LAYOUTS: dict[str, DecoderLayout] = {
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "phi3": _LLAMA_LIKE,
    "gpt2": DecoderLayout("transformer.h", "mlp", "attn", "ln_1"),
}


class UnsupportedArchitecture(ValueError):
    """The backbone's architecture is not one this library knows how to wrap."""


def _get(root: nn.Module, dotted: str) -> nn.Module:
    module = root
    for part in dotted.split("."):
        module = getattr(module, part)
    return module


def decoder_layout(llm: nn.Module) -> DecoderLayout:
    model_type = getattr(llm.config, "model_type", None)
    if model_type not in DECODER_LAYOUTS:
        raise UnsupportedArchitecture(
            f"LLM architecture '{model_type}' is not supported; supported: {sorted(DECODER_LAYOUTS)}"
        )
    return DECODER_LAYOUTS[model_type]


def decoder_blocks(llm: nn.Module) -> nn.ModuleList:
    """The causal LM's list of decoder blocks."""
    return _get(llm, decoder_layout(llm).layers)


@dataclass(frozen=True)
class VisionLayout:
    root: str            # dotted path to the module holding embeddings/encoder/post_layernorm ("" = itself)
    layers: str          # path from root to the ModuleList of blocks
    mlp: str
    attention: str
    attention_norm: str
    post_norm: str
    has_cls: bool


VISION_LAYOUTS: dict[str, VisionLayout] = {
    "clip_vision_model": VisionLayout("", "encoder.layers", "mlp", "self_attn", "layer_norm1", "post_layernorm", True),
    "clip": VisionLayout("vision_model", "encoder.layers", "mlp", "self_attn", "layer_norm1", "post_layernorm", True),
    "siglip_vision_model": VisionLayout("", "encoder.layers", "mlp", "self_attn", "layer_norm1", "post_layernorm", False),
    "siglip": VisionLayout("vision_model", "encoder.layers", "mlp", "self_attn", "layer_norm1", "post_layernorm", False),
}


def vision_layout(model: nn.Module) -> VisionLayout:
    model_type = getattr(model.config, "model_type", None)
    if model_type not in VISION_LAYOUTS:
        raise UnsupportedArchitecture(
            f"vision tower architecture '{model_type}' is not supported; supported: {sorted(VISION_LAYOUTS)}"
        )
    return VISION_LAYOUTS[model_type]


def vision_root(model: nn.Module) -> nn.Module:
    layout = vision_layout(model)
    return _get(model, layout.root) if layout.root else model


def vision_blocks(model: nn.Module) -> nn.ModuleList:
    return _get(vision_root(model), vision_layout(model).layers)


def get_attr(root: nn.Module, dotted: str) -> nn.Module:
    return _get(root, dotted)
