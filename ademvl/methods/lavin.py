"""LaVIN (SPEC §3; reference `luogen1996/LaVIN`, `lavin/mm_adapter.py`): a
RepAdapter_Router before the attention of every LLM and vision block, routed by
the modality token, six [cls] tokens after "Image: ", and the modality token
`Embedding(2, d)[has_image]` before [bos] (7 extra tokens per image sample).

x_modality: in the LLM, the pre-attention-normed hidden state of the modality
token (`attention_norm(x)[:, 0]` in the reference). No later token attends to
it, so it depends on `has_image` alone: `complete` runs it through the LLM once
per batch and every call (each decoding step too: the reference's
`cache_weights`) reads the weights from its arguments. In the vision tower, the normed [cls] of each image
(`ln_1(x)[:, 0]` in batch-first layout; the reference's sequence-first CLIP
indexes image 0 per position there, a layout slip not reproduced).
"""
from __future__ import annotations

from dataclasses import dataclass

import dataclasses

import torch
from torch import nn

from ..architectures import decoder_blocks
from ..vision import VisionTower
from .base import VisualInputs, mark_trainable
from .cls_input import ClsTokenInput
from .blocks import RepAdapterRouter, RoutedThenAdapter
from .bottleneck import place_pre_attention


@dataclass
class LavinSettings:
    adapter_dim: int = 8
    groups: int = 2
    temperature: float = 10.0     # router temperature t: 10 for 7B, 5 for 13B
    adapter_dropout: float = 0.1
    adapter_scale: float = 1.0
    vision_adapters: bool = True
    neck_hidden: int = 128
    neck_every: int = 4           # [cls] of vision blocks 4, 8, …, 24 for ViT-L
    mask_modality: bool = True    # reference: tokens after the modality token do not attend to it


class Lavin(ClsTokenInput):
    name = "lavin"
    settings_class = LavinSettings

    def __init__(self, settings: LavinSettings, llm: nn.Module, vision: VisionTower):
        super().__init__(settings, llm, vision)
        s = settings
        if s.temperature <= 0:
            raise ValueError(f"lavin temperature must be positive, got {s.temperature}")
        self._build_visual_input(vision, s.neck_every, s.neck_hidden, gated=False, modality_token=True, llm=llm)
        d, d_v = self.llm_hidden, vision.hidden_size

        def make_adapter(side, index, where):
            width = d if side == "llm" else d_v
            return mark_trainable(RepAdapterRouter(width, s.adapter_dim, s.groups, s.temperature,
                                                   s.adapter_dropout, s.adapter_scale))

        self._llm = [llm]  # a plain list: the LLM is registered by the model, not here
        place_pre_attention(llm, None, make_adapter, lambda norm, adapter: RoutedThenAdapter(norm, adapter, True),
                            before_ffn=False)
        if s.vision_adapters:
            place_pre_attention(llm, vision, make_adapter, RoutedThenAdapter, before_ffn=False, llm_side=False)

    def complete(self, visual: VisualInputs) -> VisualInputs:
        """The router weights of every decoder block, from the modality token run alone: (B, L, 2)."""
        if visual.routing is not None:
            return visual
        llm = self._llm[0]
        sink: dict[int, torch.Tensor] = {}
        modality = self.prefix_tokens(visual.has_image).to(llm.get_input_embeddings().weight.dtype)
        llm.base_model(inputs_embeds=modality, use_cache=False,
                       visual_inputs=VisualInputs(has_image=visual.has_image, routing_sink=sink))
        routing = torch.stack([sink[i] for i in range(len(decoder_blocks(llm)))], dim=1)
        return dataclasses.replace(visual, routing=routing)
