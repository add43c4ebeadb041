"""FLOP counting on the meta device: it runs, it matches a real CPU count, and the analytic
fusion FLOPs equal the counter's fusion-on minus fusion-off difference."""
import functools

import torch
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

from ademvl.bench import analytic_fusion_flops, analytic_layer_flops, analytic_projector_backward, model_flops
from ademvl.bench.flops import bare_flops
from ademvl.methods.ademvl import without_decoder_fusion
from ademvl.model import VLModel
from tiny import tiny_llm, tiny_vision

TEXT = 10
SCALES = (16, 4)


def meta_model(**settings):
    with torch.device("meta"):
        return VLModel.from_backbones(tiny_llm("llama"), tiny_vision("clip"), scales=SCALES, **settings)


@functools.lru_cache(maxsize=None)
def meta_counts(fusion: bool) -> dict:
    model = meta_model()
    return model_flops(model if fusion else without_decoder_fusion(model), TEXT)


def test_counter_runs_on_meta_for_every_unit():
    counts = meta_counts(True)
    assert set(counts) == {"forward", "decode", "train"}
    assert 0 < counts["decode"] < counts["forward"] < counts["train"]


def test_meta_fusion_difference_equals_a_real_cpu_one():
    """The meta run's all-true answers change nothing the fusion costs. (Whole counts differ: on
    CPU the counter does not see the fused flash-attention kernel; on meta attention is counted.)"""
    def real(**settings):
        torch.manual_seed(0)
        return VLModel.from_backbones(tiny_llm("llama"), tiny_vision("clip"), scales=SCALES, **settings)

    on, off = model_flops(real(), TEXT, device="cpu"), model_flops(without_decoder_fusion(real()), TEXT, device="cpu")
    meta_on, meta_off = meta_counts(True), meta_counts(False)
    for kind in ("forward", "decode", "train"):
        assert on[kind] - off[kind] == meta_on[kind] - meta_off[kind] > 0


def test_analytic_fusion_flops_match_the_counter_difference():
    on, off = meta_counts(True), meta_counts(False)
    model = meta_model()
    d, layers, n_v = model.method.llm_hidden, model.llm.config.num_hidden_layers, model.method.num_visual
    tokens = TEXT + model.method.num_input_tokens
    assert n_v == sum(SCALES)
    assert on["forward"] - off["forward"] == analytic_fusion_flops(tokens, n_v, d, layers)
    assert on["decode"] - off["decode"] == analytic_fusion_flops(1, n_v, d, layers)
    projector = analytic_projector_backward(n_v, model.vision.hidden_size, 128, d)
    assert on["train"] - off["train"] == analytic_fusion_flops(tokens, n_v, d, layers, train=True) + projector


def test_analytic_layer_flops_match_the_bare_llm_count():
    with torch.device("meta"):
        llm = tiny_llm("llama").requires_grad_(False)
    cfg = llm.config
    head = 2 * cfg.hidden_size * cfg.vocab_size  # logits of the last position only
    counted = bare_flops(llm, TEXT)
    assert counted["forward"] == cfg.num_hidden_layers * analytic_layer_flops(TEXT, TEXT, cfg) + head
    assert counted["decode"] == cfg.num_hidden_layers * analytic_layer_flops(1, TEXT + 1, cfg) + head
