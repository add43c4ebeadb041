"""Named backbone configurations (the paper's models), for counting and benchmarking
on the meta device without downloading any weights."""
from __future__ import annotations

import torch
from transformers import CLIPVisionConfig, LlamaConfig, PreTrainedConfig, Qwen3Config


def _llama(hidden: int, intermediate: int, layers: int, heads: int, max_positions: int) -> LlamaConfig:
    return LlamaConfig(
        hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, vocab_size=32000,
        max_position_embeddings=max_positions, rms_norm_eps=1e-6 if max_positions == 2048 else 1e-5,
    )



def _llama3(hidden: int, intermediate: int, layers: int, heads: int) -> LlamaConfig:
    """Meta-Llama-3-8B/70B's public config.json: GQA with 8 KV heads, 128k vocab, rope theta 5e5."""
    return LlamaConfig(
        hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192,
        rms_norm_eps=1e-5, rope_theta=500000.0, bos_token_id=128000, eos_token_id=128001,
        tie_word_embeddings=False,
    )


def _qwen3(hidden: int, intermediate: int, layers: int, heads: int) -> Qwen3Config:
    """Qwen3-8B/32B's public config.json: head_dim 128, 8 KV heads, q/k norms, untied head."""
    return Qwen3Config(
        hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=8, head_dim=128, vocab_size=151936,
        max_position_embeddings=40960, rms_norm_eps=1e-6, rope_theta=1000000.0,
        bos_token_id=151643, eos_token_id=151645, tie_word_embeddings=False,
    )


LLM_PRESETS = {
    "llama-7b": lambda: _llama(4096, 11008, 32, 32, 2048),
    "llama-13b": lambda: _llama(5120, 13824, 40, 40, 2048),
    "llama2-7b": lambda: _llama(4096, 11008, 32, 32, 4096),
    "llama2-13b": lambda: _llama(5120, 13824, 40, 40, 4096),
    "llama-3-8b": lambda: _llama3(4096, 14336, 32, 32),
    "llama-3-70b": lambda: _llama3(8192, 28672, 80, 64),
    "qwen3-8b": lambda: _qwen3(4096, 12288, 36, 32),
    "qwen3-32b": lambda: _qwen3(5120, 25600, 64, 64),
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
