"""What the memory formulas need to know about a model, read from its configs and from the
method built on the meta device (no weights, no download)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn


def resolve_config(name: str, table: dict, kind: str):
    """A preset name, or a local directory holding config.json (read with AutoConfig, never fetched)."""
    if name in table:
        return table[name]()
    if os.path.isdir(name) and os.path.isfile(os.path.join(name, "config.json")):
        from transformers import AutoConfig

        try:
            return AutoConfig.from_pretrained(name, local_files_only=True)
        except (OSError, ValueError, KeyError) as error:
            raise ValueError(f"cannot read {kind} config in '{name}': {str(error).splitlines()[0]}") from error
    raise ValueError(f"{kind} '{name}' is neither a preset ({', '.join(sorted(table))}) "
                     "nor a local directory with config.json")


@dataclass(frozen=True)
class ModelShape:
    """Sizes of the frozen backbones and of the method's extra work, per sample."""

    method: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    qk_norm: bool               # Qwen3: RMSNorm on each query/key head
    vision_hidden: int
    vision_intermediate: int
    vision_heads: int
    vision_tokens: int          # [cls] + patches per image
    vision_blocks_run: int      # blocks up to the deepest one the method reads
    vision_adapter: int         # bottleneck width of the trainable vision adapters, 0 = none (frozen tower)
    input_tokens: int           # tokens an image sample adds to the LLM input (visual + prefix)
    memory_slots: int           # N_v rows of the per-layer visual memory (ADEM-VL / MemVP), 0 = none
    masked_prefix: bool         # an attention mask is built: SDPA gets K/V repeated to all heads
    llm_adapter: int            # LaVIN / Bottleneck adapter width in each decoder block, 0 = none
    llm_adapters_per_block: int
    lora_rank: int
    lora_targets: int
    projector_hidden: int
    projector_rows: int         # rows per sample through the trainable projector / neck
    # parameter counts and bytes
    trainable: int
    frozen_quantizable: int     # weights of the LLM's frozen nn.Linear layers (lm_head excluded)
    frozen_quant_rows: int      # their output rows (int8: one fp32 scale per row)
    frozen_quant_tensors: int
    frozen_other: int           # embeddings, lm_head, norms, biases, the vision tower
    largest_block_frozen: int   # frozen weights of one decoder block (FSDP gathers one at a time)


def build_meta(llm_config, vision_config, method: str, method_config: dict):
    """`build_on_meta` for configs (presets or local directories)."""
    from transformers import AutoModel, AutoModelForCausalLM

    from ..model import VLModel

    vision_config = getattr(vision_config, "vision_config", None) or vision_config
    with torch.device("meta"):
        llm = AutoModelForCausalLM.from_config(llm_config)
        vision = AutoModel.from_config(vision_config)
        return VLModel.from_backbones(llm, vision, method=method, method_config=method_config)


def model_shape(model, method: str) -> ModelShape:
    from ..architectures import decoder_blocks

    cfg = model.llm.config.get_text_config()
    vt = model.vision
    vcfg = vt.config
    m, s = model.method, model.method.settings
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    head = model.llm.get_output_embeddings()
    quant = [mod for mod in model.llm.modules()
             if isinstance(mod, nn.Linear) and mod is not head and not mod.weight.requires_grad]
    quant_weights = {id(mod.weight) for mod in quant}
    frozen = [p for p in model.parameters() if not p.requires_grad]
    blocks = list(decoder_blocks(model.llm))
    vision_adapter = getattr(s, "adapter_dim", 0) if getattr(s, "vision_adapters", True) else 0
    if method == "bottleneck" and not s.vision_adapters:
        vision_adapter = 0
    llm_adapter, per_block = 0, 0
    if method == "lavin":
        llm_adapter, per_block = s.adapter_dim, 1
    elif method == "bottleneck" and s.llm_adapters:
        llm_adapter, per_block = s.adapter_dim, 2 if s.before_ffn else 1
    lora_targets = 0
    if method == "llava-lora":
        lora_targets = sum(1 for name, mod in blocks[0].named_modules() if name.endswith("lora_A"))
    patches = vt.grid ** 2
    if method == "ademvl":
        projector_rows = (m.num_visual if s.fusion else 0) + int(s.use_cls)
    else:
        projector_rows = patches if method == "memvp" else int(m.extra_input_tokens)
    slots = 0
    if method == "ademvl" and s.fusion:
        slots = m.num_visual
    elif method == "memvp" and s.fusion:
        slots = s.num_slots
    return ModelShape(
        method=method, hidden=cfg.hidden_size, intermediate=cfg.intermediate_size, layers=cfg.num_hidden_layers,
        heads=cfg.num_attention_heads, kv_heads=getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads,
        head_dim=head_dim, vocab=cfg.vocab_size, qk_norm=cfg.model_type == "qwen3",
        vision_hidden=vt.hidden_size, vision_intermediate=vt.intermediate_size,
        vision_heads=vcfg.num_attention_heads, vision_tokens=vt.num_tokens,
        vision_blocks_run=max(vt.block_index(layer) for layer in m.feature_layers),
        vision_adapter=vision_adapter, input_tokens=int(m.extra_input_tokens), memory_slots=slots,
        masked_prefix=bool(m.num_prefix_tokens and m.mask_prefix), llm_adapter=llm_adapter,
        llm_adapters_per_block=per_block, lora_rank=getattr(s, "lora_rank", 0), lora_targets=lora_targets,
        projector_hidden=getattr(s, "projector_hidden", getattr(s, "neck_hidden", 128)),
        projector_rows=projector_rows,
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        frozen_quantizable=sum(mod.weight.numel() for mod in quant),
        frozen_quant_rows=sum(mod.out_features for mod in quant), frozen_quant_tensors=len(quant),
        frozen_other=sum(p.numel() for p in frozen if id(p) not in quant_weights),
        largest_block_frozen=max(sum(p.numel() for p in b.parameters() if not p.requires_grad) for b in blocks),
    )


def shape_for(llm: str, vision: str, method: str, method_config: dict | None = None) -> ModelShape:
    """Presets or local config directories → the shape of `method` built on them (meta device)."""
    from ..methods import METHODS
    from ..presets import LLM_PRESETS, VISION_PRESETS

    if method not in METHODS:
        raise ValueError(f"unknown method '{method}'; available: {', '.join(sorted(METHODS))}")
    llm_config = resolve_config(llm, LLM_PRESETS, "LLM")
    vision_config = resolve_config(vision, VISION_PRESETS, "vision tower")
    return model_shape(build_meta(llm_config, vision_config, method, dict(method_config or {})), method)
