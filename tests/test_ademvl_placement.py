"""ADEM-VL's placement settings (Table VII): where each block's query is read (`query_from`) and
where α·F(query) joins (`add_to`), on every block shape."""
import copy

import pytest
import torch

from ademvl.model import VLModel
from ademvl.architectures import decoder_blocks
from ademvl.fusion import adaptive_fusion
from ademvl.methods.ademvl import FusedMLP, FusionSite
from ademvl.methods.layer_call import current_layer_call
from ademvl.methods.placement import POINTS
from test_fusion import reference_fusion
from tiny import batch, tiny_llm, tiny_vision
from tiny_methods import liven, trace_llm_side

PAIRS = [(q, a) for q in POINTS for a in POINTS if POINTS.index(a) >= POINTS.index(q)]
ARCHS = ["llama", "gemma3_text", "olmo2", "phi"]  # pre-norm, post-norm with and without pre-norms, parallel
PAD = 0


def build(arch, alpha=0.5, seed=0, **settings):
    model = VLModel.from_backbones(tiny_llm(arch, seed), tiny_vision("clip", seed + 1), alpha=alpha,
                                   scales=(16, 4), **settings)
    return liven(model.eval())


class FusedMLPBefore(torch.nn.Module):
    """The MLP wrapper as it was before placements existed, verbatim: the frozen reference of the default."""

    def __init__(self, base_layer, alpha, gamma):
        super().__init__()
        self.base_layer, self.alpha, self.gamma = base_layer, alpha, gamma

    def forward(self, n):
        out = self.base_layer(n)
        call = current_layer_call()
        if call is None or call.visual.keys is None:
            return out
        fused = adaptive_fusion(n, call.visual.keys, call.visual.values, self.gamma)
        return out + self.alpha * fused.to(out.dtype)


@pytest.mark.parametrize("arch", ["llama", "gpt2", "qwen2"])
def test_default_placement_is_bit_identical_to_the_wrapper_before_it(arch):
    ids, pixels, has_image, slot = batch(image_rows=(1, 0))
    model = build(arch)
    reference = copy.deepcopy(model)
    for block in decoder_blocks(reference.llm):
        block.mlp = FusedMLPBefore(block.mlp.base_layer, block.mlp.alpha, block.mlp.gamma)
    with torch.no_grad():
        ours = model(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot).logits
        before = reference(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot).logits
    assert type(decoder_blocks(model.llm)[0].mlp) is FusedMLP
    assert torch.equal(ours, before)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("query_from, add_to", PAIRS)
def test_every_placement_is_silent_at_alpha_zero_live_otherwise_and_cache_safe(arch, query_from, add_to):
    ids, pixels, has_image, slot = batch(image_rows=(1, 0))
    with torch.no_grad():
        plain = tiny_llm(arch)(input_ids=ids).logits
        off = build(arch, alpha=0.0, use_cls=False, query_from=query_from, add_to=add_to)
        off_logits = off(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot).logits
        model = build(arch, alpha=1.0, use_cls=False, query_from=query_from, add_to=add_to)
        on_logits = model(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot).logits
    assert (off_logits - plain).abs().max().item() <= 1e-5
    assert (on_logits - plain).abs().max().item() > 1e-5  # α = 0 leaves it exactly the plain LLM
    cached = model.generate(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot,
                            max_new_tokens=4, do_sample=False, pad_token_id=PAD, eos_token_id=None)
    seq = ids
    for _ in range(4):
        with torch.no_grad():
            logits = model(input_ids=seq, pixel_values=pixels, has_image=has_image, image_slot=slot,
                           use_cache=False).logits
        seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(cached, seq)


# Where each point lives: (block attribute, side of that module).
SITES = {
    "llama": {"attn_in": ("input_layernorm", "output"), "attn_out": ("self_attn", "output"),
              "mlp_in": ("mlp", "input"), "mlp_out": ("mlp", "output")},
    "gemma3_text": {"attn_in": ("input_layernorm", "output"), "attn_out": ("post_attention_layernorm", "output"),
                    "mlp_in": ("mlp", "input"), "mlp_out": ("post_feedforward_layernorm", "output")},
    "olmo2": {"attn_in": ("self_attn", "input"), "attn_out": ("post_attention_layernorm", "output"),
              "mlp_in": ("mlp", "input"), "mlp_out": ("post_feedforward_layernorm", "output")},
    "phi": {"attn_in": ("self_attn", "input"), "attn_out": ("self_attn", "output"),
            "mlp_in": ("mlp", "input"), "mlp_out": ("mlp", "output")},
}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("query_from, add_to", [("mlp_in", "mlp_out"), ("attn_in", "attn_out"),
                                                ("attn_in", "mlp_in"), ("attn_out", "mlp_out")])
def test_the_added_term_is_alpha_times_the_reference_fusion_of_the_query(arch, query_from, add_to):
    """At the add point the stream equals what the plain module gave plus α·F(query), F read off a
    loop-based reference and the query off the plain module at the query point."""
    model = build(arch, alpha=0.3, gamma=0.2, query_from=query_from, add_to=add_to)
    block = decoder_blocks(model.llm)[0]
    (q_attr, q_side), (a_attr, a_side) = SITES[arch][query_from], SITES[arch][add_to]
    query_site, add_site = getattr(block, q_attr), getattr(block, a_attr)
    assert isinstance(query_site, FusionSite) and query_site.query == q_side
    assert isinstance(add_site, FusionSite) and add_site.add == a_side
    seen = {}

    def keep(key, tensor):  # hooks on block 0 only, one forward: one call each
        seen.setdefault(key, tensor)

    def hidden(args, kwargs):
        return kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]

    def first(out):
        return out[0] if isinstance(out, tuple) else out

    query_base, add_base = query_site.base_layer, add_site.base_layer
    if q_side == "input":
        query_base.register_forward_pre_hook(lambda m, a, k: keep("query", hidden(a, k)), with_kwargs=True)
    else:
        query_base.register_forward_hook(lambda m, a, out: keep("query", first(out)))
    if a_side == "input":
        add_site.register_forward_pre_hook(lambda m, a, k: keep("before", hidden(a, k)), with_kwargs=True)
        add_base.register_forward_pre_hook(lambda m, a, k: keep("after", hidden(a, k)), with_kwargs=True)
    else:
        add_base.register_forward_hook(lambda m, a, out: keep("before", first(out)))
        add_site.register_forward_hook(lambda m, a, out: keep("after", first(out)))
    ids, pixels, has_image, slot = batch(image_rows=(1, 1))
    with torch.no_grad():
        visual = model.encode_images(pixels, has_image, 2)
        model(input_ids=ids, image_slot=slot, **visual.as_model_kwargs())
    expected = seen["before"].double() + 0.3 * reference_fusion(seen["query"], visual.keys, visual.values, 0.2)
    torch.testing.assert_close(seen["after"].double(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("query_from, add_to", [("mlp_in", "attn_in"), ("mlp_out", "mlp_in"), ("attn_out", "attn_in")])
def test_an_add_before_its_query_is_refused_in_one_line(query_from, add_to):
    with pytest.raises(ValueError, match=f"add_to={add_to} comes before query_from={query_from}") as info:
        build("llama", query_from=query_from, add_to=add_to)
    assert "\n" not in str(info.value)


def test_unknown_point_is_refused_in_one_line():
    with pytest.raises(ValueError, match="add_to must be one of attn_in, attn_out, mlp_in, mlp_out") as info:
        build("llama", add_to="residual")
    assert "\n" not in str(info.value)


def test_add_before_the_post_norm_is_the_other_gemma_placement():
    ids, pixels, has_image, slot = batch(image_rows=(1, 0))
    logits = {}
    for before in (False, True):
        model = build("gemma3_text", add_before_post_norm=before)
        block = decoder_blocks(model.llm)[0]
        assert isinstance(block.post_feedforward_layernorm, FusionSite) != before
        assert (block.mlp.add == "output") == before
        with torch.no_grad():
            logits[before] = model(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot).logits
    assert (logits[True] - logits[False]).abs().max().item() > 1e-3
    with pytest.raises(ValueError, match="add_to=mlp_out with add_before_post_norm comes before query_from=mlp_out"):
        build("gemma3_text", query_from="mlp_out", add_to="mlp_out", add_before_post_norm=True)


def test_add_before_the_post_norm_changes_nothing_on_blocks_without_one():
    ids, pixels, has_image, slot = batch(image_rows=(1, 0))
    with torch.no_grad():
        a, b = (build("llama", add_before_post_norm=flag)(input_ids=ids, pixel_values=pixels, has_image=has_image,
                                                          image_slot=slot).logits for flag in (False, True))
    assert torch.equal(a, b)


@pytest.mark.parametrize("arch", ["olmo2", "gemma3_text"])
def test_a_placement_across_the_block_is_one_graph(arch):
    """Query at the attention's input, add after the attention's post-norm: two wrapped modules share the
    query through the block call, and Dynamo still traces the forward whole."""
    model = build(arch, query_from="attn_in", add_to="attn_out")
    ids, pixels, has_image, slot = batch(image_rows=(1, 0))
    explained, eager, compiled = trace_llm_side(model, ids, pixels, has_image, slot)
    assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons
    assert torch.allclose(compiled, eager, atol=1e-5)
