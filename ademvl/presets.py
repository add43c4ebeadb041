"""Named backbone configurations (the paper's models), for counting and benchmarking
on the meta device without downloading any weights."""
from __future__ import annotations

import torch
from transformers import (
    CLIPVisionConfig, Gemma3TextConfig, LlamaConfig, PreTrainedConfig, Qwen3Config, Qwen3MoeConfig,
    SiglipVisionConfig,
)


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



def _qwen3_30b_a3b() -> Qwen3MoeConfig:
    """Qwen3-30B-A3B's public config.json: 48 blocks, each a sparse MLP of 128 experts (width 768, 8 routed
    per token, top-k weights renormalised); 32 query / 4 KV heads of 128; 30.5B parameters, 3.3B active."""
    return Qwen3MoeConfig(
        hidden_size=2048, intermediate_size=6144, moe_intermediate_size=768, num_hidden_layers=48,
        num_attention_heads=32, num_key_value_heads=4, head_dim=128, num_experts=128, num_experts_per_tok=8,
        norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[], vocab_size=151936,
        max_position_embeddings=40960, rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 1e6},
        bos_token_id=151643, eos_token_id=151645, tie_word_embeddings=False,
    )


def _gemma3(hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int, head_dim: int,
            query_scalar: int) -> Gemma3TextConfig:
    """The language model of Gemma 3 4B/12B/27B (the `text_config` of their public config.json): tied
    262,208-token embeddings, five 1024-token sliding-window layers per global one, RoPE θ 1e6 linearly
    scaled by 8 on the global layers (10k on the local ones), 128k positions, no logit soft-capping."""
    return Gemma3TextConfig(
        hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv_heads, head_dim=head_dim, query_pre_attn_scalar=query_scalar, vocab_size=262208,
        sliding_window=1024, max_position_embeddings=131072, rms_norm_eps=1e-6, tie_word_embeddings=True,
        rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
        pad_token_id=0, bos_token_id=2, eos_token_id=1,
    )


def _siglip_so400m(image_size: int, head: bool) -> SiglipVisionConfig:
    """SigLIP so400m/14 (google/siglip-so400m-patch14-384): width 1152, 27 blocks, MLP 4304, 16 heads."""
    return SiglipVisionConfig(
        hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16, patch_size=14,
        image_size=image_size, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6, vision_use_head=head,
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
    "qwen3-30b-a3b": _qwen3_30b_a3b,
    "gemma-3-4b": lambda: _gemma3(2560, 10240, 34, 8, 4, 256, 256),
    "gemma-3-12b": lambda: _gemma3(3840, 15360, 48, 16, 8, 256, 256),
    "gemma-3-27b": lambda: _gemma3(5376, 21504, 62, 32, 16, 128, 168),
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
    # SigLIP so400m/14 as released, at 384 px (27×27 grid, no [cls]), with its attention-pooling head.
    "siglip-so400m-14-384": lambda: _siglip_so400m(384, head=True),
    # The same tower as Gemma 3 runs it: 896 px (64×64 grid), position embeddings for that grid, no head.
    "siglip-so400m-14-896": lambda: _siglip_so400m(896, head=False),
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
