"""Named backbone configurations (the paper's models), for counting and benchmarking
on the meta device without downloading any weights."""
from __future__ import annotations

import torch
from transformers import CLIPVisionConfig, LlamaConfig, PreTrainedConfig


def _llama(hidden: int, intermediate: int, layers: int, heads: int, max_positions: int) -> LlamaConfig:
    return LlamaConfig(
        hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, vocab_size=32000,
        max_position_embeddings=max_positions, rms_norm_eps=1e-6 if max_positions == 2048 else 1e-5,
    )


LLM_PRESETS = {
    "llama-7b": lambda: _llama(4096, 11008, 32, 32, 2048),
    "llama-13b": lambda: _llama(5120, 13824, 40, 40, 2048),
    "llama2-7b": lambda: _llama(4096, 11008, 32, 32, 4096),
    "llama2-13b": lambda: _llama(5120, 13824, 40, 40, 4096),
}

VISION_PRESETS = {
    # CLIP ViT-L/14 at 224 px: 16×16 patch grid + [cls], width 1024, 24 blocks.
    "clip-vit-l-14": lambda: CLIPVisionConfig(
        hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
        patch_size=14, image_size=224, projection_dim=768, hidden_act="quick_gelu",
    ),
    # The 336 px variant (24×24 grid) used by the Bottleneck Adapter paper.
    "clip-vit-l-14-336": lambda: CLIPVisionConfig(
        hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
        patch_size=14, image_size=336, projection_dim=768, hidden_act="quick_gelu",
    ),
}


def preset_config(name: str, table: dict, kind: str) -> PreTrainedConfig:
    if name not in table:
        raise ValueError(f"unknown {kind} preset '{name}'; available: {sorted(table)}")
    return table[name]()


def build_on_meta(llm: str, vision: str, method: str = "ademvl", **method_config):
    """A full VLModel with no storage: counts and FLOPs in seconds, no weights needed."""
    from transformers import AutoModel, AutoModelForCausalLM

    from .model import VLModel

    with torch.device("meta"):
        llm_module = AutoModelForCausalLM.from_config(preset_config(llm, LLM_PRESETS, "LLM"))
        vision_module = AutoModel.from_config(preset_config(vision, VISION_PRESETS, "vision"))
        return VLModel.from_backbones(llm_module, vision_module, method=method, method_config=method_config)
