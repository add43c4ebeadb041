"""Shared visual input of the Bottleneck Adapter and LaVIN: the [cls] token of every k-th vision
block through a small neck (placed after "Image: "), and a modality token before [bos]."""
from __future__ import annotations

import torch
from torch import nn

from ..vision import VisionTower
from .base import FusionMethod, VisualInputs
from .blocks import cls_layers, cls_tokens, make_neck, scatter_rows


class ClsTokenInput(FusionMethod):
    """Subclasses call `_build_visual_input` in their constructor and set `settings.mask_modality`."""

    def _build_visual_input(self, vision: VisionTower, neck_every: int, neck_hidden: int, gated: bool,
                            modality_token: bool, llm: nn.Module | None = None) -> None:
        self.vision = [vision]  # a plain list: the tower is registered by the model, not here
        self.layers = cls_layers(vision, neck_every)
        self.neck = make_neck(vision.hidden_size, self.llm_hidden, neck_hidden, gated)
        self.modality_embedding = nn.Embedding(2, self.llm_hidden) if modality_token else None

    @property
    def num_input_tokens(self) -> int:
        return len(self.layers)

    @property
    def num_prefix_tokens(self) -> int:
        return 0 if self.modality_embedding is None else 1

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
