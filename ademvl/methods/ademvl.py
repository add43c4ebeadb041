"""ADEM-VL (SPEC §1): parameter-free cross-attention, multiscale visual prompt,
adaptive fusion, and one [cls] input token."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..fusion import adaptive_fusion, drop_index
from ..layers import Projector
from ..vision import VisionTower, check_scales, multiscale_pool
from .base import FusionMethod, VisualInputs
from .blocks import add_vision_adapters, wrap_decoder_mlps
from .layer_call import current_layer_call


@dataclass
class AdemVLSettings:
    alpha: float = 0.1            # weight of the fused result added to each MLP output
    beta: float = 0.01            # scale of the visual memory V
    gamma: float = 0.1            # adaptive drop ratio
    scales: tuple[int, ...] = (256, 64)  # multiscale prompt sizes in tokens
    use_cls: bool = True          # the [cls] embedding as one extra input token
    fusion: bool = True           # per-layer cross-attention on/off (off: the [cls] input token only,
                                  # and no visual memory: no patch projector, no E1/E2)
    projector_hidden: int = 128
    adapter_dim: int = 12         # vision adapters beside each vision block's MLP
    adapter_scale: float = 0.1
    adapter_dropout: float = 0.1
    feature_layer: int = -2       # vision block whose output feeds the method (penultimate)


class FusedMLP(nn.Module):
    """h + MLP(n) + α·F(n): wraps a decoder block's MLP, n being its (post-attention-normed) input;
    K and U are those of the block call in progress."""

    def __init__(self, base_layer: nn.Module, alpha: float, gamma: float):
        super().__init__()
        self.base_layer = base_layer
        self.alpha = alpha
        self.gamma = gamma

    def forward(self, n: torch.Tensor) -> torch.Tensor:
        out = self.base_layer(n)
        call = current_layer_call()
        if call is None or call.visual.keys is None:
            return out
        fused = adaptive_fusion(n, call.visual.keys, call.visual.values, self.gamma)
        return out + self.alpha * fused.to(out.dtype)


class AdemVL(FusionMethod):
    name = "ademvl"
    settings_class = AdemVLSettings

    def __init__(self, settings: AdemVLSettings, llm: nn.Module, vision: VisionTower):
        super().__init__(settings, llm, vision)
        s = settings
        check_scales(tuple(s.scales), vision.grid)
        drop_index(s.gamma, 1)  # validates gamma's range
        if not (s.fusion or s.use_cls):
            raise ValueError("ademvl with fusion=false needs use_cls=true: with neither, nothing carries the image")
        vision.block_index(s.feature_layer)
        self.vision = [vision]  # a plain list: the tower is registered by the model, not here
        d, d_v = self.llm_hidden, vision.hidden_size
        self.num_visual = sum(s.scales)

        # The visual memory exists only for the fusion: an ablation without it trains none of it.
        self.patch_projector = Projector(d_v, d, s.projector_hidden) if s.fusion else None
        self.cls_projector = Projector(d_v, d, s.projector_hidden) if s.use_cls else None
        self.pos_keys = nn.Parameter(torch.empty(self.num_visual, d)) if s.fusion else None    # E1
        self.pos_values = nn.Parameter(torch.empty(self.num_visual, d)) if s.fusion else None  # E2
        self.reset_parameters()

        add_vision_adapters(vision, s.adapter_dim, s.adapter_scale, s.adapter_dropout)
        if s.fusion:
            wrap_decoder_mlps(llm, lambda mlp: FusedMLP(mlp, s.alpha, s.gamma))

    def reset_parameters(self) -> None:
        if self.pos_keys is not None:
            nn.init.normal_(self.pos_keys, std=0.02)
            nn.init.zeros_(self.pos_values)

    @property
    def num_input_tokens(self) -> int:
        return 1 if self.settings.use_cls else 0

    @property
    def feature_layers(self) -> list[int]:
        return [self.settings.feature_layer]

    def encode(self, features, has_image, batch_size) -> VisualInputs:
        s = self.settings
        d = self.llm_hidden
        param = next(self.parameters())
        has_image = has_image.to(param.device, torch.bool)
        rows = (has_image.nonzero().squeeze(1),)
        memory = param.new_zeros(batch_size, self.num_visual, d) if s.fusion else None
        tokens = param.new_zeros(batch_size, 1, d) if s.use_cls else None
        if features is not None:
            tower = self.vision[0]
            hidden = tower.post_norm(features[s.feature_layer])
            cls, patches = tower.split_cls(hidden.to(param.dtype))
            if memory is not None:
                pooled = multiscale_pool(patches, tuple(s.scales))  # pool first, then project
                memory = memory.index_put(rows, (s.beta * self.patch_projector(pooled)).to(memory.dtype))
            if tokens is not None:
                tokens = tokens.index_put(rows, self.cls_projector(cls).unsqueeze(1).to(tokens.dtype))
        keys = F.silu(memory + self.pos_keys) if s.fusion else None
        values = memory + self.pos_values if s.fusion else None
        return VisualInputs(tokens=tokens, keys=keys, values=values, has_image=has_image.to(param.dtype))


def without_decoder_fusion(model: nn.Module) -> nn.Module:
    """Unwrap every `FusedMLP` in place: the visual memory is still computed, the decoder no longer
    reads it. The FLOP counter subtracts this model from the full one to isolate the per-layer fusion
    (the `fusion=false` ablation also drops the memory and its projector)."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, FusedMLP):
                setattr(module, name, child.base_layer)
    return model
