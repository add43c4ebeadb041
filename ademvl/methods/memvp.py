"""MemVP (SPEC §3; reference `JieShibo/MemVP`, `memvp/adapter.py`, `memvp/model.py`):
the projected patch tokens act as a memory read beside every LLM MLP —
`h' = h + MLP(n) + s·drop(silu(n (V+E1)ᵀ)) (V+E2)` — with ADEM-VL's vision
adapters and no extra input tokens."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import Projector
from ..vision import VisionTower
from .base import FusionMethod, VisualInputs, mark_trainable
from .blocks import add_vision_adapters, scatter_rows
from .placement import BlockSite, place_sites


@dataclass
class MemVPSettings:
    scale: float = 0.1            # weight of the memory read added to each MLP output
    beta: float = 0.01            # scale of the projected patch tokens V
    num_slots: int = 320          # rows of E1/E2; the patch tokens are zero-padded to this many
    dropout: float = 0.1          # on the activated scores
    fusion: bool = True           # the per-layer memory read on/off
    projector_hidden: int = 128
    adapter_dim: int = 12         # ADEM-VL's vision adapters beside each vision MLP
    adapter_scale: float = 0.1
    adapter_dropout: float = 0.1
    feature_layer: int = -2       # same data path as ADEM-VL (penultimate block + post_layernorm)
    modality_embedding: bool = True  # defined but unused by the reference, and counted in its 3.9M


class MemorySite(BlockSite):
    """A block module wrapped where the memory read s·drop(silu(n Kᵀ)) U is added (K = V+E1, U = V+E2,
    both per sample), n read at the MLP's input."""

    def __init__(self, base_layer: nn.Module, scale: float, dropout: float, query: str | None = None,
                 add: str | None = None):
        super().__init__(base_layer, scale, query, add)
        self.dropout = mark_trainable(nn.Dropout(dropout)) if add else None  # follows model.train()/eval()

    def read(self, n: torch.Tensor, visual: VisualInputs) -> torch.Tensor:
        keys, values = visual.keys.to(n.dtype), visual.values.to(n.dtype)
        scores = self.dropout(F.silu(torch.matmul(n, keys.transpose(-1, -2))))
        return torch.matmul(scores, values)


class MemoryMLP(MemorySite):
    """h + MLP(n) + s·drop(silu(n Kᵀ)) U on a block's MLP (a whole sparse block on MoE models). On blocks
    that normalise the MLP output again (Gemma 2/3, OLMo 2) it only reads n, and the read joins after
    that norm, as ADEM-VL's fusion does."""

    def __init__(self, base_layer: nn.Module, scale: float, dropout: float, add: str | None = "output"):
        super().__init__(base_layer, scale, dropout, query="input", add=add)


class MemVP(FusionMethod):
    name = "memvp"
    settings_class = MemVPSettings

    def __init__(self, settings: MemVPSettings, llm: nn.Module, vision: VisionTower):
        super().__init__(settings, llm, vision)
        s = settings
        vision.block_index(s.feature_layer)
        patches = vision.grid * vision.grid
        if s.num_slots < patches:
            raise ValueError(f"memvp num_slots={s.num_slots} is smaller than the tower's {patches} patch tokens")
        self.vision = [vision]
        d, d_v = self.llm_hidden, vision.hidden_size
        self.projector = Projector(d_v, d, s.projector_hidden)
        self.pos_keys = nn.Parameter(torch.randn(s.num_slots, d) * 0.02)   # E1
        self.pos_values = nn.Parameter(torch.zeros(s.num_slots, d))        # E2
        # Unused (no gradient): present in the reference model and in its parameter count.
        self.modality_embedding = nn.Embedding(2, d) if s.modality_embedding else None

        add_vision_adapters(vision, s.adapter_dim, s.adapter_scale, s.adapter_dropout)
        if s.fusion:
            place_sites(llm, lambda module, attribute, query, add: (
                MemoryMLP(module, s.scale, s.dropout, add=add) if query == "input"
                else MemorySite(module, s.scale, s.dropout, query=query, add=add)))

    @property
    def num_input_tokens(self) -> int:
        return 0

    @property
    def feature_layers(self) -> list[int]:
        return [self.settings.feature_layer]

    def encode(self, features, has_image, batch_size) -> VisualInputs:
        s = self.settings
        param = self.pos_keys
        has_image = has_image.to(param.device, torch.bool)
        memory = param.new_zeros(batch_size, s.num_slots, self.llm_hidden)
        if features is not None:
            tower = self.vision[0]
            _, patches = tower.split_cls(tower.post_norm(features[s.feature_layer]).to(param.dtype))
            projected = s.beta * self.projector(patches)                     # (n_img, P, d)
            padded = F.pad(projected, (0, 0, 0, s.num_slots - projected.shape[1]))  # zero slots after the patches
            memory = scatter_rows(memory, has_image, padded)
        if not s.fusion:
            return VisualInputs(has_image=has_image.to(param.dtype))
        return VisualInputs(keys=memory + self.pos_keys, values=memory + self.pos_values,
                            has_image=has_image.to(param.dtype))
