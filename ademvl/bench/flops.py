"""FLOPs per method with `torch.utils.flop_counter.FlopCounterMode`, on the meta device.

The counter counts matrix products (mm, bmm, addmm, convolutions, attention)
and nothing element-wise, so ADEM-VL's fusion shows up exactly as its two
products per layer: S = silu(n)Kᵀ and (M⊙S)U, each 2·T·N_v·d FLOPs.

"One new token at text length 256" is read two ways, both reported:
- `forward`: the whole prompt in one forward — 256 text tokens + the method's
  visual input tokens + the vision tower (the reading that the paper's
  figures fit: LLaVA-LoRA ≈ 2× ADEM-VL because of its 256 extra tokens);
- `decode`: one incremental token with the KV cache of that prompt filled.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from .inputs import extra_tokens, synthetic_batch
from .meta import assume_all_true
from .steps import BareSteps, VLSteps

# Table V of the paper (LLaMA-7B + ViT-L/14), in TFLOPs.
PAPER_TFLOPS_7B = {"ademvl": 54.93, "lavin": 56.19, "memvp": 54.81, "llava-lora": 110.44}


def count_flops(fn, *args, **kwargs) -> int:
    """Total matmul-like FLOPs of `fn(*args)`; meta tensors allowed (see `assume_all_true`)."""
    counter = FlopCounterMode(display=False)
    with assume_all_true(), counter:
        fn(*args, **kwargs)
    return int(counter.get_total_flops())


def step_flops(steps, kinds=("forward", "decode", "train")) -> dict[str, int]:
    """FLOPs of each work unit of a `VLSteps`/`BareSteps`."""
    out = {}
    if "forward" in kinds:
        out["forward"] = count_flops(steps.forward)
    if "decode" in kinds:
        with assume_all_true():
            visual, cache = steps.prefill()
        out["decode"] = count_flops(steps.decode, visual, cache)
    if "train" in kinds:
        out["train"] = count_flops(steps.train)
    return out


def model_flops(model, text_len: int = 256, batch_size: int = 1, answer_len: int = 8, device="meta") -> dict[str, int]:
    steps = VLSteps(model, synthetic_batch(model, batch_size, text_len, device), answer_len)
    return step_flops(steps)


def bare_flops(llm, text_len: int = 256, batch_size: int = 1, answer_len: int = 8, device="meta") -> dict[str, int]:
    device = torch.device(device)
    ids = torch.zeros(batch_size, text_len, dtype=torch.long, device=device)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    return step_flops(BareSteps(llm, inputs, extra=0, answer_len=answer_len))


def analytic_fusion_flops(tokens: int, num_visual: int, hidden: int, layers: int, batch_size: int = 1,
                          train: bool = False) -> int:
    """ADEM-VL's fusion: 2 products of 2·T·N_v·d per layer; a training step adds 4 more in backward
    (gradients to n, K, S and U), i.e. 3× the forward."""
    forward = 2 * 2 * batch_size * tokens * num_visual * hidden * layers
    return 3 * forward if train else forward


def analytic_projector_backward(num_visual: int, vision_hidden: int, projector_hidden: int, hidden: int,
                                batch_size: int = 1) -> int:
    """Backward of the patch projector (weight + input gradients of both layers): a training step
    with the fusion off skips it, so it is part of the counter's on/off difference."""
    return 2 * 2 * batch_size * num_visual * (vision_hidden * projector_hidden + projector_hidden * hidden)


def analytic_layer_flops(tokens: int, context: int, config) -> int:
    """Matmul FLOPs of one decoder layer for `tokens` queries over `context` keys (as the counter
    counts attention: the full T×context product, causal masking not subtracted)."""
    d = config.hidden_size
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    d_kv = d * kv // heads
    d_ff = config.intermediate_size
    projections = 2 * tokens * (2 * d * d + 2 * d * d_kv)
    mlp = 2 * tokens * 3 * d * d_ff
    attention = 2 * 2 * tokens * context * d
    return projections + mlp + attention


def fusion_expectation(config, tokens: int, num_visual: int) -> dict[str, float]:
    """The forward-time overhead the fusion should add to the LLM's decoder layers (FLOP ratio)."""
    layer = analytic_layer_flops(tokens, tokens, config)
    fusion = analytic_fusion_flops(tokens, num_visual, config.hidden_size, 1)
    return {"layer_flops": layer, "fusion_flops": fusion, "ratio": (layer + fusion) / layer}


def _llm_config(llm_preset: str, layers: int | None = None):
    from ..presets import LLM_PRESETS, preset_config

    config = preset_config(llm_preset, LLM_PRESETS, "LLM")
    if layers is not None:
        config.num_hidden_layers = layers
        if getattr(config, "layer_types", None) is not None:
            config.layer_types = list(config.layer_types)[:layers]
    return config


def _meta_model(llm_preset: str, vision_preset: str, method: str | None, layers: int | None, **settings):
    """The preset pair on the meta device, with `layers` decoder blocks (None: the preset's);
    method None gives the bare LLM."""
    from transformers import AutoModel, AutoModelForCausalLM

    from ..model import VLModel
    from ..presets import VISION_PRESETS, preset_config

    with torch.device("meta"):
        llm = AutoModelForCausalLM.from_config(_llm_config(llm_preset, layers))
        if method is None:
            return llm.requires_grad_(False).eval()
        vision = AutoModel.from_config(preset_config(vision_preset, VISION_PRESETS, "vision"))
        return VLModel.from_backbones(llm, vision, method=method, method_config=settings)


def _by_depth(count, layers: int, exact: bool) -> dict[str, int]:
    """`count(depth)` at the full depth, or (default) extrapolated from depths 1 and 2: every
    method adds the same work to every decoder block, so the counts are affine in the depth —
    exact, and ~L/3 times faster on the meta device, where each op costs ~1 ms of Python."""
    if exact:
        return count(None)
    one, two = count(1), count(2)
    return {k: one[k] + (layers - 1) * (two[k] - one[k]) for k in one}


def flops_table(llm_preset: str, vision_preset: str, text_len: int = 256, methods=None,
                answer_len: int = 8, exact: bool = False) -> dict:
    """Counts for every registered method (and the bare LLM) on named preset backbones."""
    from ..methods import METHODS
    from ..presets import build_on_meta

    names = list(methods) if methods is not None else list(METHODS)
    rows = {}
    config = _llm_config(llm_preset)
    layers = config.num_hidden_layers
    bare = _by_depth(lambda n: bare_flops(_meta_model(llm_preset, vision_preset, None, n), text_len,
                                          answer_len=answer_len), layers, exact)
    rows["bare-llm"] = {"extra_tokens": 0, "trainable": 0, **bare}
    for name in names:
        try:
            model = build_on_meta(llm_preset, vision_preset, name)
            counts = _by_depth(lambda n: model_flops(_meta_model(llm_preset, vision_preset, name, n), text_len,
                                                     answer_len=answer_len), layers, exact)
        except Exception as error:  # one broken method must not hide the others' figures
            rows[name] = {"error": f"{type(error).__name__}: {error}"}
            continue
        row = {"extra_tokens": extra_tokens(model),
               "trainable": model.parameter_counts()["trainable"], **counts}
        if name == "ademvl":
            d = config.hidden_size
            n_v = model.method.num_visual
            tokens = text_len + row["extra_tokens"]
            row["analytic_fusion"] = {
                "forward": analytic_fusion_flops(tokens, n_v, d, layers),
                "decode": analytic_fusion_flops(1, n_v, d, layers),
                "train": analytic_fusion_flops(tokens, n_v, d, layers, train=True),
            }
            from ..methods.ademvl import without_decoder_fusion

            def unfused(n):
                model = without_decoder_fusion(_meta_model(llm_preset, vision_preset, name, n))
                return model_flops(model, text_len, answer_len=answer_len)

            off = _by_depth(unfused, layers, exact)
            row["counted_fusion"] = {k: row[k] - off[k] for k in off}
            row["expected_overhead"] = fusion_expectation(config, tokens, n_v)
        rows[name] = row
    reference = rows.get("ademvl", {})
    for name, row in rows.items():
        if "forward" in row and "forward" in reference:
            row["forward_vs_ademvl"] = row["forward"] / reference["forward"]
        if name in PAPER_TFLOPS_7B and llm_preset.endswith("7b"):
            row["paper_tflops"] = PAPER_TFLOPS_7B[name]
            row["paper_vs_ademvl"] = PAPER_TFLOPS_7B[name] / PAPER_TFLOPS_7B["ademvl"]
    return {"llm": llm_preset, "vision": vision_preset, "text_len": text_len, "answer_len": answer_len,
            "batch_size": 1, "depth": "exact" if exact else "extrapolated from 1 and 2 decoder blocks",
            "rows": rows}
