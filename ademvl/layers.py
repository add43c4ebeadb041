"""The small trainable building blocks shared by the methods."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class Projector(nn.Module):
    """Low-rank MLP into the LLM's space: fc2(silu(fc1(z))) (SPEC §1)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 128):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in (self.fc1, self.fc2):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.silu(self.fc1(z)))


class ParallelAdapter(nn.Module):
    """s·fc2(dropout(gelu(fc1(z)))): added beside a vision block's MLP.

    fc2 starts at zero, so the tower's output is unchanged at initialisation; fc1 keeps
    PyTorch's default `nn.Linear` init (kaiming-uniform, a=√5), as the official code does.
    """

    def __init__(self, dim: int, bottleneck: int = 12, scale: float = 0.1, dropout: float = 0.1):
        super().__init__()
        self.fc1 = nn.Linear(dim, bottleneck, bias=False)
        self.fc2 = nn.Linear(bottleneck, dim, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.scale = scale
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.fc1.reset_parameters()  # PyTorch's default, which the official adapter keeps
        nn.init.zeros_(self.fc2.weight)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z.to(self.fc1.weight.dtype)
        return self.scale * self.fc2(self.dropout(F.gelu(self.fc1(z))))


class MLPWithParallelAdapter(nn.Module):
    """Wraps a frozen block MLP: mlp(z) + adapter(z), z being the MLP's (normed) input."""

    def __init__(self, base_layer: nn.Module, adapter: nn.Module):
        super().__init__()
        self.base_layer = base_layer
        self.adapter = adapter

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.base_layer(z)
        return out + self.adapter(z).to(out.dtype)
