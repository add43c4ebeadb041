"""Bottleneck Adapter (SPEC §2, paper `002_…`): a linear, group-wise adapter before
the attention of every LLM and vision block, six [cls] tokens through a small neck
after "Image: ", and a modality token u_m before [bos]."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..architectures import decoder_blocks, decoder_layout, get_attr, vision_layout
from ..vision import VisionTower
from .base import mark_trainable
from .cls_input import ClsTokenInput
from .blocks import AdapterThen, BeforeAttention, BottleneckAdapter, ThenAdapter


@dataclass
class BottleneckSettings:
    adapter_dim: int = 16         # bottleneck width (Table 2: 4 / 8 / 16 / 32)
    groups: int = 2               # groups of the up-projection (Table 2: 2 / 4; 1 = no groups)
    group_down: bool = False      # also group the down-projection ("both projections grouped")
    before_ffn: bool = False      # also an adapter before every block's MLP (the paper's other reading)
    llm_adapters: bool = True
    vision_adapters: bool = True
    neck_hidden: int = 128
    neck_every: int = 4           # [cls] of vision blocks every, 2·every, … (4, 8, …, 24 for ViT-L)
    neck_gated: bool = False      # SwiGLU neck instead of the reference's plain SiLU MLP
    modality_token: bool = True   # u_m = Embedding(2, d)[has_image] before [bos]
    mask_modality: bool = True    # reference: no later token attends to u_m (it is then inert)


def place_pre_attention(llm: nn.Module, vision: VisionTower | None, make_adapter, wrapper, before_ffn: bool,
                        llm_side: bool = True) -> None:
    """Put `make_adapter(width, where)` after each pre-attention norm (and before each MLP if asked).

    `wrapper(norm, adapter)` applies the adapter to the norm's output. A block with no norm of the
    attention's own (OLMo 2: none; Phi-1/2: one shared with the parallel MLP) gets it on the
    attention's input instead, so only the attention sees the adapted states."""
    if llm_side:
        layout = decoder_layout(llm)
        for i, block in enumerate(decoder_blocks(llm)):
            adapter = make_adapter("llm", i, "attn")
            if layout.attention_norm is None:
                attention = get_attr(block, layout.attention)
                setattr(block, layout.attention, BeforeAttention(attention, wrapper(nn.Identity(), adapter)))
            else:
                norm = get_attr(block, layout.attention_norm)
                setattr(block, layout.attention_norm, wrapper(norm, adapter))
            if before_ffn:
                setattr(block, layout.mlp, AdapterThen(get_attr(block, layout.mlp), make_adapter("llm", i, "mlp")))
    if vision is not None:
        layout = vision_layout(vision.model)
        for i, block in enumerate(vision.blocks):
            norm = get_attr(block, layout.attention_norm)
            setattr(block, layout.attention_norm, wrapper(norm, make_adapter("vision", i, "attn")))
            if before_ffn:
                setattr(block, layout.mlp, AdapterThen(get_attr(block, layout.mlp), make_adapter("vision", i, "mlp")))


class Bottleneck(ClsTokenInput):
    name = "bottleneck"
    settings_class = BottleneckSettings

    def __init__(self, settings: BottleneckSettings, llm: nn.Module, vision: VisionTower):
        super().__init__(settings, llm, vision)
        s = settings
        self._build_visual_input(vision, s.neck_every, s.neck_hidden, s.neck_gated, s.modality_token, llm)
        d, d_v = self.llm_hidden, vision.hidden_size

        def make_adapter(side, index, where):
            width = d if side == "llm" else d_v
            return mark_trainable(BottleneckAdapter(width, s.adapter_dim, s.groups, s.group_down))

        place_pre_attention(llm, vision if s.vision_adapters else None, make_adapter, ThenAdapter, s.before_ffn,
                            llm_side=s.llm_adapters)
