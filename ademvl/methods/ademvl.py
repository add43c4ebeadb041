"""ADEM-VL (SPEC §1): parameter-free cross-attention, multiscale visual prompt,
adaptive fusion, and one [cls] input token."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..architectures import decoder_layout
from ..fusion import adaptive_fusion, check_feature_map, drop_index, feature_map
from ..layers import Projector
from ..vision import VisionTower, check_pooling, check_scales, multiscale_pool
from .base import FusionMethod, VisualInputs
from .blocks import add_vision_adapters
from .placement import BlockSite, check_points, place_sites


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
    feature_map: str = "silu"     # φ of Eq. 3 on the query and on V + E1 (Table VIII): silu, none, softmax,
                                  # relu, elu, silu_positive (see ademvl.fusion.feature_map for the axes)
    pooling: str = "avg"          # how the multiscale prompt downsamples the patch grid (Table IX): avg, max
    query_from: str = "mlp_in"    # where each block's query n is read (Table VII): attn_in, attn_out, mlp_in, mlp_out
    add_to: str = "mlp_out"       # where α·F(n) joins (Table VII): attn_in, attn_out, mlp_in, mlp_out (not before
                                  # query_from); see ademvl.methods.placement for the four points
    add_before_post_norm: bool = False  # Gemma 2/3, OLMo 2: add at attn_out/mlp_out before the branch's post-norm
                                        # (renormalised with it) instead of after it


class FusionSite(BlockSite):
    """A block module wrapped at one of ADEM-VL's points (`placement`): α·F(query) with F the
    adaptive fusion, K and U those of the block call in progress."""

    def __init__(self, base_layer: nn.Module, alpha: float, gamma: float, feature_map: str = "silu",
                 query: str | None = None, add: str | None = None):
        super().__init__(base_layer, alpha, query, add)
        self.gamma = gamma
        self.feature_map = feature_map

    @property
    def alpha(self) -> float:
        """α: the weight of the fused result (the site's `scale`)."""
        return self.scale

    def read(self, query: torch.Tensor, visual: VisualInputs) -> torch.Tensor:
        return adaptive_fusion(query, visual.keys, visual.values, self.gamma, self.feature_map)


class FusedMLP(FusionSite):
    """h + MLP(n) + α·F(n): wraps a decoder block's MLP (a whole sparse block on MoE models), n being
    its input. `add=None`: it only reads n, and α·F(n) joins after the block's post-feed-forward norm
    (Gemma 2/3, OLMo 2: a `FusionSite` there)."""

    def __init__(self, base_layer: nn.Module, alpha: float, gamma: float, feature_map: str = "silu",
                 add: str | None = "output"):
        super().__init__(base_layer, alpha, gamma, feature_map, query="input", add=add)


class AdemVL(FusionMethod):
    name = "ademvl"
    settings_class = AdemVLSettings

    def __init__(self, settings: AdemVLSettings, llm: nn.Module, vision: VisionTower):
        super().__init__(settings, llm, vision)
        s = settings
        check_scales(tuple(s.scales), vision.grid)
        drop_index(s.gamma, 1)  # validates gamma's range
        check_feature_map(s.feature_map)
        check_pooling(s.pooling)
        check_points(s.query_from, s.add_to)
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
        self._llm = [llm]  # a plain list: the LLM is registered by the model, not here
        if s.fusion:
            place_sites(llm, self._fusion_site, s.query_from, s.add_to, s.add_before_post_norm)

    def _fusion_site(self, module: nn.Module, attribute: str, query: str | None, add: str | None) -> nn.Module:
        s = self.settings
        if query == "input" and attribute == decoder_layout(self._llm[0]).mlp:
            return FusedMLP(module, s.alpha, s.gamma, s.feature_map, add=add)
        return FusionSite(module, s.alpha, s.gamma, s.feature_map, query=query, add=add)

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
                pooled = multiscale_pool(patches, tuple(s.scales), s.pooling)  # pool first, then project
                memory = memory.index_put(rows, (s.beta * self.patch_projector(pooled)).to(memory.dtype))
            if tokens is not None:
                tokens = tokens.index_put(rows, self.cls_projector(cls).unsqueeze(1).to(tokens.dtype))
        keys = feature_map(memory + self.pos_keys, s.feature_map) if s.fusion else None
        values = memory + self.pos_values if s.fusion else None
        return VisualInputs(tokens=tokens, keys=keys, values=values, has_image=has_image.to(param.dtype))


def without_decoder_fusion(model: nn.Module) -> nn.Module:
    """Unwrap every `FusionSite` (`FusedMLP` included) in place: the visual memory is still computed,
    the decoder no longer reads it. The FLOP counter subtracts this model from the full one to isolate
    the per-layer fusion (the `fusion=false` ablation also drops the memory and its projector)."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, FusionSite):
                setattr(module, name, child.base_layer)
    return model
