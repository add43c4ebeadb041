"""Bottleneck Adapter (SPEC §2, paper `002_…`): a linear, group-wise adapter before
the attention of every LLM and vision block, six [cls] tokens through a small neck
after "Image: ", and a modality token u_m before [bos]."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..architectures import decoder_blocks, decoder_layout, get_attr, vision_layout
from ..vision import VisionTower
from .base import FusionMethod, FusionState, VisualInputs, mark_trainable
from .blocks import AdapterThen, BottleneckAdapter, ThenAdapter, cls_layers, cls_tokens, make_neck, scatter_rows


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
    """Put `make_adapter(width, where)` after each pre-attention norm (and before each MLP if asked)."""
    if llm_side:
        layout = decoder_layout(llm)
        for i, block in enumerate(decoder_blocks(llm)):
            norm = get_attr(block, layout.attention_norm)
            setattr(block, layout.attention_norm, wrapper(norm, make_adapter("llm", i, "attn")))
            if before_ffn:
                setattr(block, layout.mlp, AdapterThen(get_attr(block, layout.mlp), make_adapter("llm", i, "mlp")))
    if vision is not None:
        layout = vision_layout(vision.model)
        for i, block in enumerate(vision.blocks):
            norm = get_attr(block, layout.attention_norm)
            setattr(block, layout.attention_norm, wrapper(norm, make_adapter("vision", i, "attn")))
            if before_ffn:
                setattr(block, layout.mlp, AdapterThen(get_attr(block, layout.mlp), make_adapter("vision", i, "mlp")))


class Bottleneck(FusionMethod):
    name = "bottleneck"
    settings_class = BottleneckSettings

    def __init__(self, settings: BottleneckSettings, llm: nn.Module, vision: VisionTower, state: FusionState):
        super().__init__(settings, llm, vision, state)
        s = settings
        self.vision = [vision]
        self.layers = cls_layers(vision, s.neck_every)
        d, d_v = self.llm_hidden, vision.hidden_size
        self.neck = make_neck(d_v, d, s.neck_hidden, s.neck_gated)
        self.modality_embedding = nn.Embedding(2, d) if s.modality_token else None

        def make_adapter(side, index, where):
            width = d if side == "llm" else d_v
            return mark_trainable(BottleneckAdapter(width, s.adapter_dim, s.groups, s.group_down))

        place_pre_attention(llm, vision if s.vision_adapters else None, make_adapter, ThenAdapter, s.before_ffn,
                            llm_side=s.llm_adapters)

    @property
    def num_input_tokens(self) -> int:
        return len(self.layers)

    @property
    def num_prefix_tokens(self) -> int:
        return 1 if self.settings.modality_token else 0

    @property
    def mask_prefix(self) -> bool:
        return self.settings.mask_modality

    def prefix_tokens(self, has_image: torch.Tensor) -> torch.Tensor:
        index = has_image.to(self.modality_embedding.weight.device).long()
        return self.modality_embedding(index).unsqueeze(1)

    @property
    def feature_layers(self) -> list[int]:
        return self.layers

    def encode(self, features, has_image, batch_size) -> VisualInputs:
        param = next(self.neck.parameters())
        has_image = has_image.to(param.device, torch.bool)
        tokens = param.new_zeros(batch_size, len(self.layers), self.llm_hidden)
        if features is not None:
            cls = cls_tokens(self.vision[0], features, self.layers).to(param.dtype)
            tokens = scatter_rows(tokens, has_image, self.neck(cls))
        return VisualInputs(tokens=tokens, has_image=has_image.to(param.dtype))
