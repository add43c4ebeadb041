"""The frozen vision tower: one forward per image, hidden states of chosen blocks."""
from __future__ import annotations

import math

import torch
from torch import nn

from .architectures import get_attr, vision_blocks, vision_layout, vision_root


class VisionTower(nn.Module):
    """Wraps a Hugging Face vision model (CLIP, SigLIP, SigLIP 2, DINOv2 with or without registers,
    or any tower with CLIP's module names) and exposes what methods need.

    `forward(pixel_values, layers)` returns the raw residual stream after each
    requested block (negative indices count from the end, -1 = last block).
    The methods need a fixed patch grid (their pooled scales, memory slots and visual
    tokens are sized from it at construction), so every tower takes square images of
    `image_size` px: `grid`×`grid` patches. SigLIP 2 runs at its position-embedding grid
    (`num_patches`), its NaFlex variable-resolution inputs are refused; DINOv2 at its
    config's `image_size` (518 px for the released checkpoints).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        layout = vision_layout(model)
        self.has_cls = layout.has_cls
        self._post_norm_path = layout.post_norm
        self._patch_rows = layout.pixels == "patches"
        cfg = self.config
        self.hidden_size = cfg.hidden_size
        self.num_layers = cfg.num_hidden_layers
        self.patch_size = cfg.patch_size
        self.grid = math.isqrt(cfg.num_patches) if self._patch_rows else cfg.image_size // cfg.patch_size
        # The input size: SigLIP 2's grid of patches; the config's for the others (384 px = 27 patches of 14).
        self.image_size = self.grid * self.patch_size if self._patch_rows else cfg.image_size
        self.num_registers = int(getattr(cfg, "num_register_tokens", 0) or 0)  # DINOv2 with registers

    @property
    def config(self):
        cfg = self.model.config
        return getattr(cfg, "vision_config", None) or cfg

    @property
    def num_prefix_tokens(self) -> int:
        """Tokens before the patches in each block's output: [cls] and register tokens."""
        return int(self.has_cls) + self.num_registers

    @property
    def num_tokens(self) -> int:
        return self.grid * self.grid + self.num_prefix_tokens

    @property
    def intermediate_size(self) -> int:
        cfg = self.config
        return getattr(cfg, "intermediate_size", None) or int(cfg.mlp_ratio * cfg.hidden_size)  # DINOv2: mlp_ratio

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

    def model_inputs(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        """The tower's forward arguments for (B, C, S, S) images, S = `image_size`. SigLIP 2 takes
        patch rows, as its processor lays them out ((row, column) order, each patch (p, p, C)),
        with the grid in `spatial_shapes` and every row valid."""
        size = self.image_size
        if self._patch_rows and pixel_values.dim() == 3:
            raise ValueError("SigLIP 2 NaFlex inputs (variable-resolution patch rows) are not supported: feed "
                             f"{size}x{size} images (VisionTower.fit_image_processor makes the processor for them)")
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[-2:]) != (size, size):
            raise ValueError(f"the vision tower takes {size}x{size} images ({self.grid}x{self.grid} patches of "
                             f"{self.patch_size} px), got pixel_values of shape {tuple(pixel_values.shape)}: "
                             f"use an image processor that outputs {size}x{size}")
        if not self._patch_rows:
            return {"pixel_values": pixel_values}
        batch, channels, g, p = pixel_values.shape[0], pixel_values.shape[1], self.grid, self.patch_size
        rows = pixel_values.reshape(batch, channels, g, p, g, p).permute(0, 2, 4, 3, 5, 1).reshape(batch, g * g, -1)
        device = pixel_values.device
        return {"pixel_values": rows,
                "pixel_attention_mask": torch.ones(batch, g * g, dtype=torch.long, device=device),
                "spatial_shapes": torch.tensor([[g, g]], dtype=torch.long, device=device).expand(batch, 2)}

    def fit_image_processor(self, processor):
        """The processor to feed this tower with: a SigLIP 2 NaFlex processor (patch rows of a grid
        that follows each image's aspect) becomes SigLIP's fixed-size one at `image_size`, with its
        resampling, rescaling and normalisation: on a square image both give the same pixels. Any
        other processor is returned as is (`forward` checks the size of what it gives)."""
        if "spatial_shapes" not in getattr(processor, "model_input_names", ()):
            return processor
        from transformers import SiglipImageProcessorPil

        return SiglipImageProcessorPil(
            do_resize=True, size={"height": self.image_size, "width": self.image_size}, resample=processor.resample,
            do_rescale=processor.do_rescale, rescale_factor=processor.rescale_factor,
            do_normalize=processor.do_normalize, image_mean=processor.image_mean, image_std=processor.image_std,
            do_convert_rgb=True)

    def forward(self, pixel_values: torch.Tensor, layers: list[int]) -> dict[int, torch.Tensor]:
        """Transformers keeps only the selected hidden states (`output_hidden_states=[...]`), with
        its own per-call collector: safe for threads, no hooks on the shared blocks. Every block
        runs (ADEM-VL's penultimate read leaves the last one unused: 1/24 of ViT-L)."""
        dtype = next(self.model.parameters()).dtype
        indices = {layer: self.block_index(layer) for layer in layers}
        inputs = self.model_inputs(pixel_values.to(dtype))
        out = vision_root(self.model)(**inputs, output_hidden_states=sorted(set(indices.values())))
        return {layer: out.hidden_states[index] for layer, index in indices.items()}

    def split_cls(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, prefix + P, d) → cls (B, d), patches (B, P, d): register tokens belong to neither;
        towers without [cls] use the patch mean."""
        patches = tokens[:, self.num_prefix_tokens:]
        if self.has_cls:
            return tokens[:, 0], patches
        return patches.mean(dim=1), patches


# How `multiscale_pool` downsamples the grid: the paper's average pooling, or max pooling (its Table IX).
POOLINGS = {"avg": nn.functional.adaptive_avg_pool2d, "max": nn.functional.adaptive_max_pool2d}


def check_pooling(name: str) -> str:
    """`name` if it is one of `POOLINGS`, else a one-line ValueError naming the choices."""
    if name not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {name!r}")
    return name


def multiscale_pool(patches: torch.Tensor, scales: tuple[int, ...], pooling: str = "avg") -> torch.Tensor:
    """Pool a square patch grid to each scale (in tokens), by `pooling` (avg or max), and concatenate.

    patches (B, g·g, d) → (B, Σ scales, d). A scale equal to g·g is used as is (unpooled).
    """
    pool = POOLINGS[check_pooling(pooling)]
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
            level = pool(grid_map, side)
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
