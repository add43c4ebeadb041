"""The frozen vision tower: one forward per image, hidden states of chosen blocks."""
from __future__ import annotations

import math

import torch
from torch import nn

from .architectures import get_attr, vision_blocks, vision_layout, vision_root


class VisionTower(nn.Module):
    """Wraps a Hugging Face CLIP/SigLIP vision model and exposes what methods need.

    `forward(pixel_values, layers)` returns the raw residual stream after each
    requested block (negative indices count from the end, -1 = last block).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        layout = vision_layout(model)
        self.has_cls = layout.has_cls
        self._post_norm_path = layout.post_norm
        cfg = self.config
        self.hidden_size = cfg.hidden_size
        self.num_layers = cfg.num_hidden_layers
        self.grid = cfg.image_size // cfg.patch_size

    @property
    def config(self):
        cfg = self.model.config
        return getattr(cfg, "vision_config", None) or cfg

    @property
    def blocks(self) -> nn.ModuleList:
        return vision_blocks(self.model)

    @property
    def post_norm(self) -> nn.Module:
        return get_attr(vision_root(self.model), self._post_norm_path)

    def block_index(self, layer: int) -> int:
        """Index into hidden_states (0 = embeddings, i = output of block i) for a block number."""
        index = layer + self.num_layers + 1 if layer < 0 else layer
        if not 1 <= index <= self.num_layers:
            raise ValueError(f"vision block {layer} does not exist in a {self.num_layers}-block tower")
        return index

    def forward(self, pixel_values: torch.Tensor, layers: list[int]) -> dict[int, torch.Tensor]:
        """Transformers keeps only the selected hidden states (`output_hidden_states=[...]`), with
        its own per-call collector: safe for threads, no hooks on the shared blocks. Every block
        runs (ADEM-VL's penultimate read leaves the last one unused: 1/24 of ViT-L)."""
        dtype = next(self.model.parameters()).dtype
        indices = {layer: self.block_index(layer) for layer in layers}
        out = vision_root(self.model)(pixel_values=pixel_values.to(dtype), output_hidden_states=sorted(set(indices.values())))
        return {layer: out.hidden_states[index] for layer, index in indices.items()}

    def split_cls(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, [1+]P, d) → cls (B, d), patches (B, P, d); towers without [cls] use the patch mean."""
        if self.has_cls:
            return tokens[:, 0], tokens[:, 1:]
        return tokens.mean(dim=1), tokens


def multiscale_pool(patches: torch.Tensor, scales: tuple[int, ...]) -> torch.Tensor:
    """Average-pool a square patch grid to each scale (in tokens) and concatenate.

    patches (B, g·g, d) → (B, Σ scales, d). A scale equal to g·g is used as is.
    """
    batch, num, dim = patches.shape
    grid = math.isqrt(num)
    if grid * grid != num:
        raise ValueError(f"patch tokens ({num}) do not form a square grid")
    check_scales(scales, grid)
    grid_map = patches.transpose(1, 2).reshape(batch, dim, grid, grid)
    pooled = []
    for scale in scales:
        side = math.isqrt(scale)
        if side == grid:
            pooled.append(patches)
        else:
            level = nn.functional.adaptive_avg_pool2d(grid_map, side)
            pooled.append(level.flatten(2).transpose(1, 2))
    return torch.cat(pooled, dim=1)


def check_scales(scales: tuple[int, ...], grid: int) -> None:
    """Each scale must be a square token count that fits the g×g patch grid."""
    if not scales:
        raise ValueError("multiscale scales must name at least one scale")
    for scale in scales:
        side = math.isqrt(scale) if scale > 0 else 0
        if side < 1 or side * side != scale or side > grid:
            raise ValueError(
                f"multiscale scale {scale} must be a square number of tokens no larger than the "
                f"{grid}x{grid}={grid * grid}-token patch grid"
            )
