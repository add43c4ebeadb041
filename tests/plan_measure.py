"""Counted activation bytes of a real training forward, for checking `ademvl plan`'s formula."""
from __future__ import annotations

import torch
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

from ademvl.bench.inputs import synthetic_batch
from ademvl.model import VLModel


def tiny_pair(hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int, vision_hidden: int,
              vision_layers: int, dtype=torch.float32, seed: int = 0):
    """Random LLaMA + CLIP (4×4 grid), frozen backbones in `dtype`, as tests/tiny.py builds them."""
    torch.manual_seed(seed)
    llm = LlamaForCausalLM(LlamaConfig(vocab_size=300, hidden_size=hidden, intermediate_size=intermediate,
                                       num_hidden_layers=layers, num_attention_heads=heads,
                                       num_key_value_heads=kv_heads, max_position_embeddings=1024))
    vision = CLIPVisionModel(CLIPVisionConfig(hidden_size=vision_hidden, intermediate_size=4 * vision_hidden,
                                              num_hidden_layers=vision_layers, num_attention_heads=4,
                                              image_size=32, patch_size=8, hidden_act="quick_gelu"))
    return llm.to(dtype).eval(), vision.to(dtype).eval()


def measured_bytes(model: VLModel, batch_size: int, text_len: int, answer_len: int, checkpointing: bool) -> int:
    """Unique non-parameter storages autograd saves in one training forward (vision tower included),
    plus, with checkpointing, the visual inputs the checkpointed blocks hold as keyword arguments."""
    model.train()
    if checkpointing:
        model.activation_checkpointing_enable()
    else:
        model.activation_checkpointing_disable()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    batch = synthetic_batch(model, batch_size, text_len)
    labels = batch["input_ids"].clone()
    labels[:, :-answer_len] = -100
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        visual = model.encode_images(batch["pixel_values"], batch["has_image"], batch_size)
        for tensor in (visual.keys, visual.values, visual.tokens):
            if tensor is not None:
                seen[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     image_slot=batch["image_slot"], labels=labels, **visual.as_model_kwargs()).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(seen.values())
