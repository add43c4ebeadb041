"""LLaVA-LoRA (SPEC §3): every projected patch token placed after "Image: " (256 for
ViT-L/14 at 224 px), LoRA on the frozen LLM through peft, and ADEM-VL's vision
adapters (the MemVP framework the paper's baseline comes from).

Defaults give 4,395,136 trainable at LLaMA-7B + ViT-L/14 (SPEC: ≈4.4M):
projector 659,584 + LoRA r=6 on q_proj/v_proj 32·2·6·(4096+4096) = 3,145,728 +
vision adapters 589,824.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers import Projector
from ..vision import VisionTower
from ..architectures import decoder_blocks, decoder_layout, get_attr
from .base import FusionMethod, VisualInputs, mark_trainable
from .blocks import add_vision_adapters, scatter_rows

# Attention projections LoRA targets by default: q_proj and v_proj, or the block's fused q/k/v
# projection where it has one (GPT-2 c_attn, GPT-NeoX query_key_value, Phi-3 qkv_proj).
LLAMA_LIKE_TARGETS = ("q_proj", "v_proj")
FUSED_QKV = ("c_attn", "query_key_value", "qkv_proj", "Wqkv")
LORA_PARTS = ("lora_A", "lora_B", "lora_dropout", "lora_embedding_A", "lora_embedding_B", "lora_magnitude_vector")


@dataclass
class LlavaLoraSettings:
    lora_rank: int = 6
    lora_alpha: float = 12.0
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] | None = None  # None = q_proj, v_proj, or the fused q/k/v projection
    projector_hidden: int = 128
    vision_adapters: bool = True
    adapter_dim: int = 12
    adapter_scale: float = 0.1
    adapter_dropout: float = 0.1
    feature_layer: int = -2       # penultimate block + post_layernorm, as ADEM-VL


def default_targets(llm: nn.Module) -> tuple[str, ...]:
    """q_proj + v_proj if the first block's attention has them, else its fused q/k/v projection."""
    attention = get_attr(decoder_blocks(llm)[0], decoder_layout(llm).attention)
    names = {name.rsplit(".", 1)[-1] for name, _ in attention.named_modules()}
    if set(LLAMA_LIKE_TARGETS) <= names:
        return LLAMA_LIKE_TARGETS
    return next(((name,) for name in FUSED_QKV if name in names), LLAMA_LIKE_TARGETS)


def lora_config(llm: nn.Module, settings: "LlavaLoraSettings"):
    """The peft `LoraConfig` of these settings on this LLM (used to inject, and to export)."""
    from peft import LoraConfig

    s = settings
    if s.lora_rank < 1:
        raise ValueError(f"llava-lora lora_rank must be at least 1, got {s.lora_rank}")
    targets = s.lora_targets or default_targets(llm)
    return LoraConfig(r=s.lora_rank, lora_alpha=s.lora_alpha, lora_dropout=s.lora_dropout, target_modules=list(targets),
                      bias="none", task_type="CAUSAL_LM",
                      fan_in_fan_out=llm.config.model_type == "gpt2")  # GPT-2's Conv1D stores W transposed


def inject_lora(llm: nn.Module, config) -> None:
    """peft's LoRA layers in place inside `llm`; their parts are marked trainable for the model."""
    from peft import inject_adapter_in_model

    targets = sorted(config.target_modules)
    try:
        inject_adapter_in_model(config, llm)
    except ValueError as error:
        raise ValueError(f"llava-lora: cannot put LoRA on modules {list(targets)}: {str(error).splitlines()[0]}") from error
    for name, module in llm.named_modules():
        if name.rsplit(".", 1)[-1] in LORA_PARTS:
            mark_trainable(module).float()  # trainable weights stay fp32 under a bf16/fp16 LLM (peft casts inputs)


class LlavaLora(FusionMethod):
    name = "llava-lora"
    settings_class = LlavaLoraSettings

    def __init__(self, settings: LlavaLoraSettings, llm: nn.Module, vision: VisionTower):
        super().__init__(settings, llm, vision)
        s = settings
        vision.block_index(s.feature_layer)
        self.vision = [vision]
        self.num_patches = vision.grid * vision.grid
        self.projector = Projector(vision.hidden_size, self.llm_hidden, s.projector_hidden)
        if s.vision_adapters:
            add_vision_adapters(vision, s.adapter_dim, s.adapter_scale, s.adapter_dropout)
        inject_lora(llm, lora_config(llm, s))

    @property
    def num_input_tokens(self) -> int:
        return self.num_patches

    @property
    def feature_layers(self) -> list[int]:
        return [self.settings.feature_layer]

    def encode(self, features, has_image, batch_size) -> VisualInputs:
        param = next(self.projector.parameters())
        has_image = has_image.to(param.device, torch.bool)
        tokens = param.new_zeros(batch_size, self.num_patches, self.llm_hidden)
        if features is not None:
            tower = self.vision[0]
            _, patches = tower.split_cls(tower.post_norm(features[self.settings.feature_layer]).to(param.dtype))
            tokens = scatter_rows(tokens, has_image, self.projector(patches))
        return VisualInputs(tokens=tokens, has_image=has_image.to(param.dtype))
