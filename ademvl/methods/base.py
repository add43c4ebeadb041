"""What every fusion method provides to the shared model, trainer and CLI.

A method owns its trainable modules, wraps the frozen backbones' modules in
place (never forking a model file), and turns vision-tower features into
`VisualInputs`: tokens spliced into the LLM input and/or a memory that its
per-layer wrappers read from the shared `FusionState`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..vision import VisionTower


@dataclass
class VisualInputs:
    """A batch's visual inputs to the LLM, computed once per batch (and per generate call)."""

    tokens: torch.Tensor | None = None  # (B, n_tokens, d): placed at each sample's image slot
    keys: torch.Tensor | None = None    # (B, N_v, d): memory read by the per-layer fusion
    values: torch.Tensor | None = None  # (B, N_v, d)
    has_image: torch.Tensor | None = None  # (B,) float 0/1


class FusionState:
    """Shared, per-forward slot through which the model hands visual inputs to layer wrappers.

    Decoder blocks call `self.mlp(hidden_states)` with nothing else, so the
    wrappers cannot receive the memory as an argument; the model sets it here
    right before running the LLM and clears it afterwards.
    """

    def __init__(self) -> None:
        self.visual: VisualInputs | None = None
        # Tokens already in the KV cache (0 = this chunk starts the sequence), and a dict
        # that lives with the cache: what a wrapper computed at the first chunk (e.g.
        # LaVIN's router weights) and must reuse at every later decoding step.
        self.past_length: int = 0
        self.memo: dict = {}


class FusionMethod(nn.Module):
    """Base class of ADEM-VL and its baselines."""

    name: ClassVar[str]
    settings_class: ClassVar[type]

    def __init__(self, settings, llm: nn.Module, vision: VisionTower, state: FusionState):
        super().__init__()
        self.settings = settings
        self.state = state
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
        """Tokens the model prepends before [bos] (e.g. a modality token); 0 = none."""
        return 0

    @property
    def mask_prefix(self) -> bool:
        """Whether later tokens are barred from attending to the prefix tokens."""
        return False

    def prefix_tokens(self, has_image: torch.Tensor) -> torch.Tensor:
        """(B,) 0/1 → (B, num_prefix_tokens, d) embeddings placed before [bos]."""
        raise NotImplementedError

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
