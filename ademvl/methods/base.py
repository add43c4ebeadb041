"""What every fusion method provides to the shared model, trainer and CLI.

A method owns its trainable modules, wraps the frozen backbones' modules in
place (never forking a model file), and turns vision-tower features into
`VisualInputs`: tokens spliced into the LLM input and/or a memory that its
per-layer wrappers read during each LLM call (`layer_call`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..vision import VisionTower


@dataclass
class VisualInputs:
    """A batch's visual inputs to the LLM, computed once per batch (and per generate call).

    They reach the decoder blocks as an argument of each LLM call (see `layer_call`).
    """

    tokens: torch.Tensor | None = None  # (B, n_tokens, d): written over each sample's image slot
    keys: torch.Tensor | None = None    # (B, N_v, d): memory read by the per-layer fusion
    values: torch.Tensor | None = None  # (B, N_v, d)
    has_image: torch.Tensor | None = None  # (B,) float 0/1
    routing: torch.Tensor | None = None    # (B, n_layers, 2): LaVIN's router weights per decoder block
    routing_sink: dict | None = None       # filled by the blocks while `routing` is being computed

    def as_model_kwargs(self) -> dict:
        """The keyword arguments of `VLModel.forward` that carry these inputs to a later call."""
        return {"visual_tokens": self.tokens, "visual_keys": self.keys, "visual_values": self.values,
                "visual_routing": self.routing, "has_image": self.has_image}


class FusionMethod(nn.Module):
    """Base class of ADEM-VL and its baselines."""

    name: ClassVar[str]
    settings_class: ClassVar[type]

    def __init__(self, settings, llm: nn.Module, vision: VisionTower):
        super().__init__()
        self.settings = settings
        self.llm_hidden = llm.config.get_text_config().hidden_size

    # --- what the model asks of a method -------------------------------------------------
    @property
    def num_input_tokens(self) -> int:
        """Extra tokens each image sample adds to the LLM input."""
        raise NotImplementedError

    @property
    def extra_input_tokens(self) -> int:
        """All tokens an image sample adds to the LLM input: visual tokens + prefix tokens."""
        return self.num_input_tokens + self.num_prefix_tokens

    @property
    def num_prefix_tokens(self) -> int:
        """Placeholder tokens before [bos] in `input_ids` (a modality token) whose embedding
        the model writes from `prefix_tokens`; 0 = none."""
        return 0

    @property
    def mask_prefix(self) -> bool:
        """Whether later tokens are barred from attending to the prefix tokens (a mask function)."""
        return False

    def prefix_tokens(self, has_image: torch.Tensor) -> torch.Tensor:
        """(B,) 0/1 → (B, num_prefix_tokens, d) embeddings written over the placeholders before [bos]."""
        raise NotImplementedError

    def complete(self, visual: VisualInputs) -> VisualInputs:
        """Add what the decoder blocks need that only the LLM itself can compute (LaVIN's router
        weights); called once per batch / per generate call, after `encode`."""
        return visual

    @property
    def feature_layers(self) -> list[int]:
        """Vision blocks whose outputs `encode` reads (negative = from the end)."""
        raise NotImplementedError

    def encode(
        self, features: dict[int, torch.Tensor] | None, has_image: torch.Tensor, batch_size: int
    ) -> VisualInputs:
        """Features of the image rows (None if there are none) → the batch's visual inputs."""
        raise NotImplementedError


def mark_trainable(module: nn.Module) -> nn.Module:
    """Flag a module the model must keep trainable (and in train mode while training)."""
    module._ademvl_trainable = True
    return module
