"""Building blocks of the baselines (SPEC §2–3): grouped projections, the two
pre-attention adapters, the wrappers that place them, and the [cls] neck."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import MLPWithParallelAdapter, ParallelAdapter, Projector
from ..vision import VisionTower
from .base import mark_trainable
from .layer_call import current_layer_call
from .placement import replace_hidden_states


class GroupedLinear(nn.Module):
    """Group-wise projection (a 1×1 `Conv1d(groups=g)`): input split in g parts, each mapped to out/g.

    Weight shape (out, in/g) as the reference's conv weight without its kernel axis.
    """

    def __init__(self, in_features: int, out_features: int, groups: int, bias: bool = True):
        super().__init__()
        if groups < 1 or in_features % groups or out_features % groups:
            raise ValueError(f"groups={groups} must divide both {in_features} and {out_features}")
        self.groups = groups
        self.weight = nn.Parameter(torch.empty(out_features, in_features // groups))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.groups
        weight = self.weight.view(g, -1, self.weight.shape[1])          # (g, out/g, in/g)
        y = torch.einsum("...gi,goi->...go", x.unflatten(-1, (g, -1)), weight).flatten(-2)
        return y + self.bias if self.bias is not None else y


def projection(in_features: int, out_features: int, groups: int) -> nn.Module:
    return nn.Linear(in_features, out_features) if groups == 1 else GroupedLinear(in_features, out_features, groups)


class BottleneckAdapter(nn.Module):
    """g(Z) = Z + ψ_u(ψ_d(Z)): linear, no dropout, no scale; identity at initialisation (SPEC §2)."""

    def __init__(self, dim: int, bottleneck: int = 16, groups: int = 2, group_down: bool = False):
        super().__init__()
        self.down = projection(dim, bottleneck, groups if group_down else 1)
        self.up = projection(bottleneck, dim, groups)
        nn.init.xavier_uniform_(self.down.weight)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z.to(self.down.weight.dtype)
        return z + self.up(self.down(x)).to(z.dtype)


class RepAdapterRouter(nn.Module):
    """LaVIN's RepAdapter_Router: x + w0·B(drop(A x)) + w1·D(drop(A x)), w = softmax(router(x_mod)/t)."""

    def __init__(self, dim: int, bottleneck: int = 8, groups: int = 2, temperature: float = 10.0,
                 dropout: float = 0.1, scale: float = 1.0):
        super().__init__()
        self.conv_A = nn.Linear(dim, bottleneck)
        self.conv_B = GroupedLinear(bottleneck, dim, groups)
        self.conv_D = GroupedLinear(bottleneck, dim, groups)
        self.expert_weights = nn.Linear(dim, 2)  # PyTorch's default init, as the reference
        self.dropout = nn.Dropout(dropout)
        self.temperature = temperature
        self.scale = scale
        nn.init.xavier_uniform_(self.conv_A.weight)
        nn.init.zeros_(self.conv_A.bias)
        for layer in (self.conv_B, self.conv_D):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def route(self, x_modality: torch.Tensor) -> torch.Tensor:
        """(B, d) → (B, 2) expert weights."""
        logits = self.expert_weights(x_modality.to(self.expert_weights.weight.dtype))
        return torch.softmax(logits / self.temperature, dim=-1)

    def forward(self, z: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        x = z.to(self.conv_A.weight.dtype)
        a = self.dropout(self.conv_A(x))
        w = weights.to(x.dtype)
        out = self.scale * (self.conv_B(a) * w[:, None, 0:1] + self.conv_D(a) * w[:, None, 1:2])
        return z + out.to(z.dtype)


class ThenAdapter(nn.Module):
    """adapter(base(x)): wraps a pre-attention norm, so the attention sees BA(norm(x))."""

    def __init__(self, base_layer: nn.Module, adapter: nn.Module):
        super().__init__()
        self.base_layer = base_layer
        self.adapter = adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.base_layer(x))


class BeforeAttention(nn.Module):
    """attention(adapter(x), ...): an adapter on the attention's own input, for blocks with no norm that
    only the attention reads (OLMo 2 has no pre-norm; Phi-1/2 share one norm with the parallel MLP)."""

    def __init__(self, base_layer: nn.Module, adapter: nn.Module):
        super().__init__()
        self.base_layer = base_layer
        self.adapter = adapter

    def forward(self, *args, **kwargs):
        args, kwargs = replace_hidden_states(args, kwargs, self.adapter)
        return self.base_layer(*args, **kwargs)


class AdapterThen(nn.Module):
    """base(adapter(z)): wraps a block's MLP, so it sees BA(norm(h)) (the 'also before the FFN' option)."""

    def __init__(self, base_layer: nn.Module, adapter: nn.Module):
        super().__init__()
        self.base_layer = base_layer
        self.adapter = adapter

    def forward(self, z: torch.Tensor, *args, **kwargs):
        return self.base_layer(self.adapter(z), *args, **kwargs)


class RoutedThenAdapter(nn.Module):
    """router-adapter(base(x)), the expert weights routed by x_modality.

    In the vision tower x_modality is each chunk's normed first token ([cls]). In the LLM
    (`from_call=True`) the weights are those of the block call in progress, `visual.routing`,
    which `Lavin.complete` computes once per batch by running the modality token alone through
    the LLM (it attends only to itself, so it is the same there as in the sequence): during that
    pass each block routes on its chunk's first token and leaves the weights in `routing_sink`.
    Decoding steps, beams and threads therefore all read the weights from their own call.
    """

    def __init__(self, base_layer: nn.Module, adapter: RepAdapterRouter, from_call: bool = False):
        super().__init__()
        self.base_layer = base_layer
        self.adapter = adapter
        self.from_call = from_call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.base_layer(x)
        call = current_layer_call() if self.from_call else None
        if call is not None and call.visual.routing is not None:
            weights = call.visual.routing[:, call.index]
        else:
            weights = self.adapter.route(z[:, 0])
            if call is not None and call.visual.routing_sink is not None:
                call.visual.routing_sink[call.index] = weights
        return self.adapter(z, weights)


class GatedNeck(nn.Module):
    """SwiGLU neck: w2(silu(w1 z) · w3 z) — the gated reading of the paper's 'SwiGLU'."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 128):
        super().__init__()
        self.w1 = nn.Linear(in_dim, hidden)
        self.w3 = nn.Linear(in_dim, hidden)
        self.w2 = nn.Linear(hidden, out_dim)
        for layer in (self.w1, self.w3, self.w2):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(z)) * self.w3(z))


def cls_layers(vision: VisionTower, every: int) -> list[int]:
    """Vision blocks every `every` blocks (4, 8, …, 24 for ViT-L with every=4)."""
    if every < 1 or every > vision.num_layers:
        raise ValueError(f"neck_every={every} must be between 1 and the tower's {vision.num_layers} blocks")
    return list(range(every, vision.num_layers + 1, every))


def cls_tokens(vision: VisionTower, features: dict[int, torch.Tensor], layers: list[int]) -> torch.Tensor:
    """Raw residual-stream [cls] of each listed block (patch mean for towers without one) → (B, n, d_v)."""
    return torch.stack([vision.split_cls(features[layer])[0] for layer in layers], dim=1)


def make_neck(d_v: int, d: int, hidden: int, gated: bool) -> nn.Module:
    return GatedNeck(d_v, d, hidden) if gated else Projector(d_v, d, hidden)


def scatter_rows(template: torch.Tensor, has_image: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Write the image rows' values into a zero tensor shaped for the whole batch."""
    return template.index_put((has_image.nonzero().squeeze(1),), rows.to(template.dtype))


def add_vision_adapters(vision: VisionTower, dim: int, scale: float, dropout: float) -> None:
    """ADEM-VL's trainable parallel adapter beside the MLP of every vision block."""
    for block in vision.blocks:
        adapter = ParallelAdapter(vision.hidden_size, dim, scale, dropout)
        block.mlp = MLPWithParallelAdapter(block.mlp, mark_trainable(adapter))
