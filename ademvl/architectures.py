"""Where the parts live inside each supported Hugging Face architecture.

Methods never fork a model file: they wrap modules that these tables locate
(the decoder blocks, each block's MLP, attention and pre-attention norm; the
vision blocks and the final vision norm).

A decoder block's layout and shape (pre-norm, post-norm, mixture of experts,
parallel) are read from the block itself where transformers names its parts
regularly, so a new Llama-like family needs no entry; what cannot be wrapped
is refused in one line that says why.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


# Block shapes: how a decoder block joins its attention and feed-forward branches to the residual stream.
PRE_NORM = "pre-norm"    # h += Attn(n1(h)); h += MLP(n2(h))                     (Llama, Mistral, Qwen, GPT-2, ...)
POST_NORM = "post-norm"  # h += N_a(Attn(·)); h += N_f(MLP(·)): the branch outputs are normalised
                         # again (Gemma 2/3 with pre-norms too, OLMo 2 without them)
MOE = "moe"              # pre-norm with a sparse mixture-of-experts feed-forward (router + experts)
PARALLEL = "parallel"    # h += Attn(n(h)) + MLP(n'(h)), both branches from the same h (GPT-NeoX, Phi-1/2)


@dataclass(frozen=True)
class DecoderLayout:
    """Where the parts of each decoder block live (attribute names of the block) and the block's shape."""

    layers: str                    # dotted path from the *ForCausalLM to the ModuleList of blocks
    mlp: str                       # the feed-forward module (a whole sparse block on MoE models, router included)
    attention: str                 # self-attention
    attention_norm: str | None     # the norm only the attention reads (None: no pre-norm, or one shared with the MLP)
    shape: str = PRE_NORM
    attention_out_norm: str | None = None  # norm on the attention's output before the residual add (post-norm)
    mlp_out_norm: str | None = None        # norm on the feed-forward output before the residual add (post-norm)


# Blocks whose parts transformers names irregularly. Every other family is derived from its block
# (`derive_layout`): model.layers[i] with self_attn / mlp and the usual norm names.
DECODER_LAYOUTS: dict[str, DecoderLayout] = {
    "gpt2": DecoderLayout("transformer.h", "mlp", "attn", "ln_1"),
}

class UnsupportedArchitecture(ValueError):
    """The backbone's architecture is not one this library knows how to wrap."""


def _get(root: nn.Module, dotted: str) -> nn.Module:
    module = root
    for part in dotted.split("."):
        module = getattr(module, part)
    return module


def _has(module: nn.Module, name: str) -> bool:
    return isinstance(getattr(module, name, None), nn.Module)


def is_sparse_moe(mlp: nn.Module) -> bool:
    """A mixture-of-experts feed-forward: a router (gate/router) beside a set of experts (looked for
    inside a method's wrapper too)."""
    while not _has(mlp, "experts") and _has(mlp, "base_layer"):
        mlp = mlp.base_layer
    return _has(mlp, "experts") and (_has(mlp, "gate") or _has(mlp, "router"))


def _refuse(model_type, why: str) -> UnsupportedArchitecture:
    return UnsupportedArchitecture(f"LLM architecture '{model_type}' is not supported: {why}")


def derive_layout(llm: nn.Module) -> DecoderLayout:
    """The layout of a model whose blocks are `model.layers[i]` with transformers' usual part names.

    The norms a block owns decide its shape: `post_feedforward_layernorm` = the branch outputs are
    normalised again (Gemma 2/3, OLMo 2, where `post_attention_layernorm` is the attention output's
    norm); `input_layernorm` + `post_attention_layernorm` = pre-norm (MoE when the MLP is sparse);
    `input_layernorm` alone = one norm shared by parallel attention and MLP (Phi-1/2, Cohere).
    """
    model_type = getattr(llm.config, "model_type", None)
    try:
        blocks = _get(llm, "model.layers")
    except AttributeError:
        raise _refuse(model_type, "its decoder blocks are not at model.layers and it has no layout of its own; "
                                  f"supported block layouts: {sorted(DECODER_LAYOUTS)} and model.layers "
                                  "blocks with self_attn and mlp") from None
    if not isinstance(blocks, nn.ModuleList) or len(blocks) == 0:
        raise _refuse(model_type, "model.layers is not a list of decoder blocks")
    layouts = {_block_layout(block, model_type) for block in blocks}
    if len(layouts) > 1 and {layout.shape for layout in layouts} == {PRE_NORM, MOE}:
        layouts = {layout for layout in layouts if layout.shape == MOE}  # some dense layers between sparse ones
    if len(layouts) > 1:
        raise _refuse(model_type, "its decoder blocks have different shapes (hybrid layers)")
    return layouts.pop()


_BLOCK_NORMS = ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm")


def _block_layout(block: nn.Module, model_type) -> DecoderLayout:
    for part in ("self_attn", "mlp"):
        if not _has(block, part):
            raise _refuse(model_type, f"decoder block {type(block).__name__} has no '{part}' "
                                      "(linear-attention, state-space or other hybrid layers)")
    unknown = sorted(name for name, _ in block.named_children() if "norm" in name and name not in _BLOCK_NORMS)
    if unknown:  # e.g. a norm on a branch output under another name: where to add would be a guess
        raise _refuse(model_type, f"decoder block {type(block).__name__} has norms whose place in the block is "
                                  f"not known here: {', '.join(unknown)}")
    pre, post_attn = _has(block, "input_layernorm"), _has(block, "post_attention_layernorm")
    if _has(block, "post_feedforward_layernorm"):
        return DecoderLayout("model.layers", "mlp", "self_attn", "input_layernorm" if pre else None, POST_NORM,
                             "post_attention_layernorm" if post_attn else None, "post_feedforward_layernorm")
    if pre and post_attn:
        shape = MOE if is_sparse_moe(block.mlp) else PRE_NORM
        return DecoderLayout("model.layers", "mlp", "self_attn", "input_layernorm", shape)
    if pre:
        return DecoderLayout("model.layers", "mlp", "self_attn", None, PARALLEL)
    raise _refuse(model_type, f"decoder block {type(block).__name__} has none of the usual norms "
                              "(input_layernorm, post_attention_layernorm, post_feedforward_layernorm)")


def _explicit_layout(llm: nn.Module) -> DecoderLayout | None:
    model_type = getattr(llm.config, "model_type", None)
    if model_type == "gpt_neox":  # one block class, two shapes
        parallel = getattr(llm.config, "use_parallel_residual", True)
        return DecoderLayout("gpt_neox.layers", "mlp", "attention", "input_layernorm",
                             PARALLEL if parallel else PRE_NORM)
    return DECODER_LAYOUTS.get(model_type)


def apply_head_transform(config, logits: torch.Tensor) -> torch.Tensor:
    """What the LLM's *ForCausalLM does to the LM head's output (this model applies the head to the
    decoder's hidden states itself): Gemma 2's soft-capping, Cohere's scale, Granite's divisor."""
    cap = getattr(config, "final_logit_softcapping", None)
    if cap is not None:
        logits = torch.tanh(logits / cap) * cap
    scale = getattr(config, "logit_scale", None)
    if scale is not None and scale != 1.0:
        logits = logits * scale
    divisor = getattr(config, "logits_scaling", None)
    if divisor is not None and divisor != 1.0:
        logits = logits / divisor
    return logits


def decoder_layout(llm: nn.Module) -> DecoderLayout:
    """Where each part of `llm`'s decoder blocks lives, or one line saying why it cannot be wrapped."""
    from transformers.modeling_layers import GradientCheckpointingLayer  # here: importing this module stays light

    layout = _explicit_layout(llm) or derive_layout(llm)
    blocks = _get(llm, layout.layers)
    if not isinstance(blocks[0], GradientCheckpointingLayer):
        raise _refuse(llm.config.model_type, f"its decoder block {type(blocks[0]).__name__} is not a transformers "
                                             "GradientCheckpointingLayer (visual inputs travel as block arguments)")
    return layout


def decoder_blocks(llm: nn.Module) -> nn.ModuleList:
    """The causal LM's list of decoder blocks."""
    return _get(llm, decoder_layout(llm).layers)


def has_sliding_window_layers(config) -> bool:
    """Some (not all) layers attend through a sliding window: the model builds one mask per layer kind."""
    kinds = set(getattr(config, "layer_types", None) or ())
    return len(kinds) > 1 and "sliding_attention" in kinds


@dataclass(frozen=True)
class VisionLayout:
    root: str            # dotted path to the module holding embeddings/encoder/post norm ("" = itself)
    layers: str          # path from root to the ModuleList of blocks
    mlp: str
    attention: str
    attention_norm: str
    post_norm: str
    has_cls: bool        # the first token is a [cls] (any register tokens follow it: config.num_register_tokens)
    pixels: str = "image"  # "image": (B, C, H, W); "patches": SigLIP 2's patch rows + spatial_shapes + mask


# The CLIP family's names (CLIP, SigLIP, SigLIP 2, AltCLIP, MetaCLIP 2, Chinese-CLIP, ...). A tower
# built from them, itself or under `vision_model`, is recognised by its structure (`derive_vision_layout`).
_CLIP_NAMES = dict(layers="encoder.layers", mlp="mlp", attention="self_attn", attention_norm="layer_norm1",
                   post_norm="post_layernorm")
# DINOv2 (with or without registers): h += γ1·Attn(norm1(h)); h += γ2·MLP(norm2(h)), γ the learned layer scales.
_DINOV2 = VisionLayout("", "encoder.layer", "mlp", "attention", "norm1", "layernorm", True)

VISION_LAYOUTS: dict[str, VisionLayout] = {
    "clip_vision_model": VisionLayout("", **_CLIP_NAMES, has_cls=True),
    "clip": VisionLayout("vision_model", **_CLIP_NAMES, has_cls=True),
    "siglip_vision_model": VisionLayout("", **_CLIP_NAMES, has_cls=False),
    "siglip": VisionLayout("vision_model", **_CLIP_NAMES, has_cls=False),
    "siglip2_vision_model": VisionLayout("", **_CLIP_NAMES, has_cls=False, pixels="patches"),
    "siglip2": VisionLayout("vision_model", **_CLIP_NAMES, has_cls=False, pixels="patches"),
    "dinov2": _DINOV2,
    "dinov2_with_registers": _DINOV2,
}


def derive_vision_layout(model: nn.Module) -> VisionLayout | None:
    """The CLIP family's layout read off the module tree (None if the names are not all there):
    the root is `vision_model` when the model has one; a [cls] iff the embeddings hold a
    `class_embedding`; patch rows (SigLIP 2) iff the patch embedding is a Linear, not a Conv2d."""
    root_name = "vision_model" if isinstance(getattr(model, "vision_model", None), nn.Module) else ""
    root = model.vision_model if root_name else model
    try:
        blocks = _get(root, _CLIP_NAMES["layers"])
        _get(root, _CLIP_NAMES["post_norm"])
        embeddings = root.embeddings
    except AttributeError:
        return None
    parts = (_CLIP_NAMES["attention_norm"], _CLIP_NAMES["attention"], "layer_norm2", _CLIP_NAMES["mlp"])
    if not isinstance(blocks, nn.ModuleList) or not len(blocks) or not all(
            isinstance(getattr(block, part, None), nn.Module) for block in blocks for part in parts):
        return None
    pixels = "patches" if isinstance(getattr(embeddings, "patch_embedding", None), nn.Linear) else "image"
    has_cls = isinstance(getattr(embeddings, "class_embedding", None), nn.Parameter)
    return VisionLayout(root_name, **_CLIP_NAMES, has_cls=has_cls, pixels=pixels)


def vision_layout(model: nn.Module) -> VisionLayout:
    model_type = getattr(model.config, "model_type", None)
    layout = VISION_LAYOUTS.get(model_type) or derive_vision_layout(model)
    if layout is None:
        raise UnsupportedArchitecture(
            f"vision tower architecture '{model_type}' is not supported; supported: {sorted(VISION_LAYOUTS)} "
            "or a tower with CLIP's module names (encoder.layers of layer_norm1/self_attn/layer_norm2/mlp, "
            "post_layernorm), itself or as its vision_model"
        )
    return layout


def vision_root(model: nn.Module) -> nn.Module:
    layout = vision_layout(model)
    return _get(model, layout.root) if layout.root else model


def vision_blocks(model: nn.Module) -> nn.ModuleList:
    return _get(vision_root(model), vision_layout(model).layers)


def get_attr(root: nn.Module, dotted: str) -> nn.Module:
    return _get(root, dotted)
