"""Activation bytes a training step keeps for backward, per device.

The formula counts, tensor by tensor, what autograd saves in one forward with frozen backbones
(frozen weights save nothing for their own gradient, so a frozen Linear keeps no input). It was
derived from, and is tested against, the unique storages `torch.autograd.graph.saved_tensors_hooks`
sees in real training forwards of tiny LLaMA + CLIP models (`tests/test_plan.py`), the measurement
`benchmarks/model_contract.py` makes. `e` = bytes of the compute dtype (4 fp32, 2 bf16/fp16);
some tensors are fp32 whatever `e` is (RMSNorm upcasts its input, SDPA's log-sum-exp, the fp32
trainable adapters and LoRA, the loss's log-softmax).

Per decoder layer and input token (h hidden, i intermediate, q = heads·head_dim, kv = kv_heads·head_dim):
    2 RMSNorms       2·(4h + 4)                fp32 input copy + 1/rms
    attention (SDPA) e·(2q + 2kv') + 4·heads   q, k, v, output, log-sum-exp; kv' = q when a mask is
                                               built (transformers then repeats K/V to every head)
    SwiGLU MLP       3·e·i                     gate, silu(gate), up
    Qwen3 q/k norms  4·(q + kv) + 4·(heads + kv_heads)
    ADEM-VL fusion   2·e·h + (e + 1)·N_v       n, silu(n), masked scores, drop mask
    MemVP fusion     e·h + 3·e·N_v             n, scores, dropout mask and output
    LaVIN adapter    12·h + 6·r                fp32 input, router mix, down input, bottleneck
    Bottleneck       4·h + 4·r                 per adapter
    LoRA (per target) 8·h + 4·rank             fp32 input + dropout output, rank activations
Per layer and sample, when e < 4: ADEM-VL/MemVP cast K and U to the compute dtype in each layer,
and those copies are saved: 2·N_v·h·e.
Outside the layers: final norm 4h + 4 and ~10 bytes of indices per token; log-softmax 4·vocab per
answer token; the visual memory itself (fp32): K/U or their pre-activation (3·N_v·h·4 at fp32, one
N_v·h·4 at bf16) and the input-stage tokens (4·h each); projector activations.
Vision tower, per block run and token, only when it holds trainable adapters:
    e·(2·d_v + 4·d_v + 2·i_v) + 4·heads_v + 16 + 4·d_v + 12·r_v
(two LayerNorm inputs + stats, q/k/v/out, quick-GELU input and output, the adapter's fp32 input).
Gradient checkpointing (non-reentrant, one decoder block at a time): a block keeps only its input
e·h per token, the visual memory stays as fp32 K and U (3·N_v·h·4 with the pre-activation), and
the backward recomputes one block at a time, whose plain activations are a transient peak.
"""
from __future__ import annotations

from dataclasses import dataclass

from .shape import ModelShape


@dataclass(frozen=True)
class Activations:
    """Bytes per device; `saved` excludes the visual memory, which is its own line."""

    saved: int            # decoder layers (+ the rest of the graph), vision tower, head
    visual_memory: int    # what the method holds per batch for its per-layer / input-stage fusion
    recompute_peak: int   # checkpointing only: one block's plain activations while it is recomputed

    @property
    def total(self) -> int:
        return self.saved + self.visual_memory + self.recompute_peak


def layer_token_bytes(s: ModelShape, e: int) -> float:
    """Plain (not checkpointed) bytes one decoder layer saves per input token."""
    q = s.heads * s.head_dim
    kv = s.kv_heads * s.head_dim
    kv_saved = q if s.masked_prefix else kv
    b = 2 * (4 * s.hidden + 4) + e * (2 * q + 2 * kv_saved) + 4 * s.heads + 3 * e * s.intermediate
    if s.qk_norm:
        b += 4 * (q + kv) + 4 * (s.heads + s.kv_heads)
    n = s.memory_slots
    if s.method == "ademvl" and n:
        b += 2 * e * s.hidden + (e + 1) * n
    elif s.method == "memvp" and n:
        b += e * s.hidden + 3 * e * n
    elif s.method == "lavin":
        b += 12 * s.hidden + 6 * s.llm_adapter
    elif s.method == "bottleneck":
        b += s.llm_adapters_per_block * (4 * s.hidden + 4 * s.llm_adapter)
    b += s.lora_targets * (8 * s.hidden + 4 * s.lora_rank)
    return b


def vision_bytes(s: ModelShape, batch: int, e: int, checkpointing: bool) -> int:
    """The vision tower's saved activations: zero when nothing in it trains (no gradient through it).
    Plain, the first block's input needs no gradient, so it keeps only its adapter's input; with
    checkpointing transformers makes the embeddings require grad, so every block keeps everything."""
    if not s.vision_adapter:
        return 0
    d, i = s.vision_hidden, s.vision_intermediate
    adapter = 4 * d + 12 * s.vision_adapter
    full = e * (6 * d + 2 * i) + 4 * s.vision_heads + 16 + adapter
    per_token = s.vision_blocks_run * full + (4 * d + 8 if checkpointing else adapter - full)
    return batch * s.vision_tokens * per_token


def visual_memory_bytes(s: ModelShape, batch: int, e: int, checkpointing: bool) -> int:
    """The method's visual inputs held for the step (ADEM-VL's multiscale K/U, input-stage tokens)."""
    n, h = s.memory_slots, s.hidden
    held = 0
    if n:
        fp32_tensors = 2 if s.method == "memvp" else (3 if (e == 4 or checkpointing) else 1)
        held += batch * fp32_tensors * n * h * 4
        if e != 4 and not checkpointing:
            held += s.layers * 2 * batch * n * h * e  # per-layer compute-dtype copies of K and U
    held += batch * s.input_tokens * h * 4
    return held


def activation_bytes(s: ModelShape, batch: int, text_tokens: int, answer_tokens: int, e: int,
                     checkpointing: bool) -> Activations:
    tokens = batch * (text_tokens + s.input_tokens)
    per_layer = layer_token_bytes(s, e) * tokens
    if s.masked_prefix:
        mask = batch * (text_tokens + s.input_tokens) ** 2 * e  # one (B, 1, T, T) additive mask, shared
    else:
        mask = 0
    rest = tokens * (4 * s.hidden + 4 + 10) + batch * answer_tokens * 4 * s.vocab + mask
    rest += batch * s.projector_rows * (4 * s.vision_hidden + 8 * s.projector_hidden)
    vision = vision_bytes(s, batch, e, checkpointing)
    memory = visual_memory_bytes(s, batch, e, checkpointing)
    if checkpointing:
        kept = s.layers * tokens * s.hidden * e
        copies = 2 * batch * s.memory_slots * s.hidden * e if e != 4 else 0  # K/U cast in the block
        return Activations(saved=int(kept + rest + vision), visual_memory=int(memory),
                           recompute_peak=int(per_layer + copies))
    return Activations(saved=int(s.layers * per_layer + rest + vision), visual_memory=int(memory), recompute_peak=0)
