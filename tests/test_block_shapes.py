"""Every LLM family and block shape (pre-norm, post-norm, mixture of experts, parallel): with its
fusion off the model is the plain LLM, the KV cache and beam search change nothing, checkpointing
keeps the gradients, Dynamo traces the blocks whole, and all five methods attach to every block."""
import copy
import warnings

import pytest
import torch

from ademvl.model import VLModel
from ademvl.architectures import MOE, PARALLEL, POST_NORM, PRE_NORM, decoder_blocks, decoder_layout
from ademvl.methods.ademvl import FusionSite
from ademvl.methods.blocks import BottleneckAdapter, RepAdapterRouter
from ademvl.methods.memvp import MemorySite
from tiny import MORE_ARCHS, batch, tiny_llm, tiny_vision
from tiny_methods import ALL_METHODS, TINY, inputs, liven, text_columns, trace_llm_side

PAD = 0
SHAPES = {"llama": PRE_NORM, "gpt2": PRE_NORM, "qwen3": PRE_NORM, "phi3": PRE_NORM, "gpt_neox_sequential": PRE_NORM,
          "gemma2": POST_NORM, "gemma3_text": POST_NORM, "olmo2": POST_NORM,
          "mixtral": MOE, "qwen2_moe": MOE, "qwen3_moe": MOE, "gpt_oss": MOE, "gpt_neox": PARALLEL, "phi": PARALLEL}
ONE_PER_SHAPE = ["gemma3_text", "olmo2", "mixtral", "gpt_neox", "phi"]  # plus pre-norm llama in the older tests


def build(method, arch, seed=0, **settings):
    """A tiny model of `method` on `arch`."""
    tiny = dict(TINY.get(method, {"scales": (16, 4)}))
    return VLModel.from_backbones(tiny_llm(arch, seed), tiny_vision("clip", seed + 1), method=method,
                                  **{**tiny, **settings}).eval()


@pytest.mark.parametrize("arch", sorted(SHAPES))
def test_block_shape_is_read_from_the_block(arch):
    assert decoder_layout(tiny_llm(arch)).shape == SHAPES[arch]
    assert decoder_layout(build("ademvl", arch).llm).shape == SHAPES[arch]  # the same once its parts are wrapped


@pytest.mark.parametrize("arch", [arch for arch, shape in SHAPES.items() if shape == MOE])
def test_moe_fusion_wraps_the_whole_sparse_block(arch):
    """Router, experts (and Qwen2-MoE's shared expert) inside one wrapper; nothing wrapped inside it."""
    for block in decoder_blocks(build("ademvl", arch).llm):
        assert isinstance(block.mlp, FusionSite) and block.mlp.query == "input" and block.mlp.add == "output"
        sparse = block.mlp.base_layer
        assert hasattr(sparse, "experts") and (hasattr(sparse, "gate") or hasattr(sparse, "router"))
        assert not any(isinstance(m, FusionSite) for m in sparse.modules())


@pytest.mark.parametrize("arch", MORE_ARCHS)
def test_fusion_off_is_the_plain_llm_and_on_is_not(arch):
    ids, pixels, has_image, slot = batch()
    plain = tiny_llm(arch)
    with torch.no_grad():
        expected = plain(input_ids=ids).logits
    for alpha in (0.0, 0.5):
        model = VLModel.from_backbones(copy.deepcopy(plain), tiny_vision(), alpha=alpha, use_cls=False,
                                       scales=(16, 4)).eval()
        with torch.no_grad():
            model.method.pos_values.normal_()  # the fusion path is live, only α silences it
            ours = model(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot).logits
        gap = (ours - expected).abs().max().item()
        assert gap <= 1e-5 if alpha == 0.0 else gap > 1e-3, (alpha, gap)


def greedy_by_recomputing(model, ids, pixels, has_image, slot, steps):
    seq = ids
    for _ in range(steps):
        with torch.no_grad():
            logits = model(input_ids=seq, pixel_values=pixels, has_image=has_image, image_slot=slot,
                           use_cache=False).logits
        seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return seq


@pytest.mark.parametrize("arch", MORE_ARCHS)
def test_cached_generation_and_beams_equal_recomputation(arch):
    """12 tokens cross the 8-token sliding windows of Gemma and gpt-oss."""
    model = liven(build("ademvl", arch, alpha=0.5))
    ids, pixels, has_image, slot = batch(batch_size=2, image_rows=(1, 0))
    common = dict(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot, max_new_tokens=6,
                  do_sample=False, pad_token_id=PAD, eos_token_id=None)
    assert torch.equal(model.generate(**common), greedy_by_recomputing(model, ids, pixels, has_image, slot, 6))
    beams = dict(common, num_beams=3, num_return_sequences=2)
    cached = model.generate(**beams)
    assert cached.shape == (4, ids.shape[1] + 6)
    assert torch.equal(cached, model.generate(**beams, use_cache=False))


@pytest.mark.parametrize("arch", MORE_ARCHS)
def test_baselines_at_init_are_the_plain_llm_on_text_rows(arch):
    """Identity adapters, no visual tokens, u_m masked (a one-position shift, which RoPE ignores): the plain
    LLM's logits (sliding-window models included: the mask hiding u_m is built per layer kind)."""
    for method in [m for m in ALL_METHODS if m != "ademvl"]:
        x = inputs(method, image_rows=(0, 0))
        with torch.no_grad():
            ours = text_columns(method, build(method, arch)(**x).logits)
            plain = tiny_llm(arch)(input_ids=text_columns(method, x["input_ids"])).logits
        assert (ours - plain).abs().max().item() <= 1e-5, method


def loss_and_grads(model, method, checkpointing):
    model.train()
    if checkpointing:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            model.gradient_checkpointing_enable()
    x = inputs(method, image_rows=(1, 0))
    labels = x["input_ids"].clone()
    labels[:, :-4] = -100
    torch.manual_seed(7)
    loss = model(**x, labels=labels).loss
    loss.backward()
    return loss.detach(), {name: p.grad for name, p in model.trainable_parameters().items()}


def assert_checkpointing_keeps_gradients(method, arch):
    plain_loss, plain = loss_and_grads(liven(build(method, arch)), method, checkpointing=False)
    loss, grads = loss_and_grads(liven(build(method, arch)), method, checkpointing=True)
    assert torch.allclose(loss, plain_loss, rtol=0, atol=1e-6)
    with_grad = [n for n, g in plain.items() if g is not None]
    assert len(with_grad) > 0.5 * len(plain)
    assert {n for n, g in grads.items() if g is not None} == set(with_grad)
    for name in with_grad:
        assert (grads[name] - plain[name]).abs().max().item() <= 1e-6, name


@pytest.mark.parametrize("arch", MORE_ARCHS)
def test_checkpointed_gradients_equal_plain(arch):
    assert_checkpointing_keeps_gradients("ademvl", arch)


@pytest.mark.parametrize("arch", ONE_PER_SHAPE)
@pytest.mark.parametrize("method", [m for m in ALL_METHODS if m != "ademvl"])
def test_baselines_checkpointed_gradients_equal_plain(method, arch):
    assert_checkpointing_keeps_gradients(method, arch)


def lora_count(llm, rank, targets):
    return sum(rank * (m.in_features + m.out_features) for name, m in llm.named_modules()
               if name.rsplit(".", 1)[-1] in targets)


@pytest.mark.parametrize("arch", MORE_ARCHS)
def test_every_method_attaches_to_every_block(arch):
    """Same widths as the llama reference, so the same trainable counts; one wrapper per block; and the
    method changes what the LLM computes."""
    blocks = len(decoder_blocks(tiny_llm(arch)))
    ids, pixels, has_image, slot = batch()
    for method in ALL_METHODS:
        model = liven(build(method, arch))
        trainable = model.parameter_counts()["trainable"]
        if method == "llava-lora":
            targets = {"gpt_neox": {"query_key_value"}, "gpt_neox_sequential": {"query_key_value"},
                       "phi3": {"qkv_proj"}}.get(arch, {"q_proj", "v_proj"})
            llama_lora = lora_count(tiny_llm("llama"), 6, {"q_proj", "v_proj"})
            expected = (build(method, "llama").parameter_counts()["trainable"] - llama_lora
                        + lora_count(tiny_llm(arch), 6, targets))
        else:
            expected = build(method, "llama").parameter_counts()["trainable"]
        assert trainable == expected, method
        kind = {"ademvl": FusionSite, "memvp": MemorySite, "bottleneck": BottleneckAdapter,
                "lavin": RepAdapterRouter}.get(method)
        if kind is not None:
            adding = [m for m in model.llm.modules() if isinstance(m, kind) and getattr(m, "add", True)]
            assert len(adding) == blocks, method
        x = inputs(method, image_rows=(1, 1))
        with torch.no_grad():
            logits = model(**x).logits
            plain = tiny_llm(arch)(input_ids=x["input_ids"]).logits
        assert torch.isfinite(logits).all()
        assert (logits - plain).abs().max().item() > 1e-3, method


@pytest.mark.parametrize("arch", ONE_PER_SHAPE)
def test_llm_side_forward_is_one_graph(arch):
    """Visual inputs already encoded: Dynamo traces the whole forward, every block, without a break."""
    model = liven(build("ademvl", arch))
    x = inputs("ademvl", image_rows=(1, 0))
    explained, eager, compiled = trace_llm_side(model, x["input_ids"], x["pixel_values"], x["has_image"],
                                                x["image_slot"])
    assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons
    assert torch.allclose(compiled, eager, atol=1e-5)


def test_model_keeps_the_llms_expert_kernels():
    llm = tiny_llm("mixtral")
    chosen = llm.config._experts_implementation
    model = VLModel.from_backbones(llm, tiny_vision(), scales=(16, 4))
    assert model.llm.config._experts_implementation == chosen


@pytest.mark.parametrize("build_llm, message", [
    (lambda: _lfm2(), "'lfm2' is not supported: decoder block Lfm2DecoderLayer has no 'self_attn'"),
    (lambda: _glm4(), "'glm4' is not supported: decoder block Glm4DecoderLayer has norms whose place in the block "
                      "is not known here: post_mlp_layernorm, post_self_attn_layernorm"),
])
def test_unusable_architectures_are_refused_in_one_line(build_llm, message):
    with pytest.raises(ValueError, match=message) as info:
        VLModel.from_backbones(build_llm(), tiny_vision(), scales=(16, 4))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("arch", ["gemma3_text", "gpt_oss"])
@pytest.mark.parametrize("method", ["bottleneck", "lavin"])
def test_hidden_modality_token_on_sliding_window_layers(method, arch):
    """The mask hiding the modality token is built per layer kind (full and sliding), so: no later token
    sees the modality token (changing its embedding changes no later logit), the sliding window still
    holds (a wider window changes the logits of the tokens past it), and the cache changes nothing."""
    model = liven(build(method, arch, mask_modality=True))
    x = inputs(method, image_rows=(1, 0), length=14)  # longer than the 8-token windows
    with torch.no_grad():
        before = model(**x).logits
        model.method.modality_embedding.weight.add_(1.0)
        after = model(**x).logits
        if method == "bottleneck":  # (LaVIN's routing reads the modality token on purpose)
            assert (after[:, 1:] - before[:, 1:]).abs().max().item() == 0.0
        assert (after[:, 0] - before[:, 0]).abs().max().item() > 1e-4  # the token itself does change
        wide = copy.deepcopy(model)
        wide.llm.config.get_text_config().sliding_window = 64
        assert (wide(**x).logits[:, 10:] - after[:, 10:]).abs().max().item() > 1e-4
    ids = x["input_ids"]
    cached = model.generate(**x, attention_mask=torch.ones_like(ids), max_new_tokens=5, do_sample=False)
    assert torch.equal(cached, greedy_by_recomputing(model, ids, x["pixel_values"], x["has_image"],
                                                     x["image_slot"], 5))


def test_lm_head_transforms_are_applied():
    """Gemma 2's soft-capping and Granite's logit divisor, as their *ForCausalLM applies them: fusion off
    equals the plain model's logits and loss."""
    from transformers import GraniteConfig, GraniteForCausalLM

    ids, pixels, has_image, slot = batch()
    granite = GraniteForCausalLM(GraniteConfig(vocab_size=120, hidden_size=48, intermediate_size=96,
                                               num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                               logits_scaling=4.0, pad_token_id=0)).eval()
    for plain in (_gemma2_capped().eval(), granite):
        with torch.no_grad():
            expected = plain(input_ids=ids, labels=ids)
        model = VLModel.from_backbones(copy.deepcopy(plain), tiny_vision(), alpha=0.0, use_cls=False,
                                       scales=(16, 4)).eval()
        with torch.no_grad():
            ours = model(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot)
            loss = model(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot, labels=ids).loss
        assert (ours.logits - expected.logits).abs().max().item() <= 1e-5
        assert abs(loss.item() - expected.loss.item()) <= 1e-5


def test_router_logits_are_returned_and_not_added_to_the_loss():
    """output_router_logits=true: the router logits come back as the MoE LLM returns them; the tuning loss
    is the answer tokens' cross-entropy alone (the auxiliary loss is the caller's to add)."""
    ids, pixels, has_image, slot = batch()
    quiet = VLModel.from_backbones(tiny_llm("mixtral"), tiny_vision(), scales=(16, 4)).eval()
    loud = VLModel.from_backbones(_mixtral_with_router_logits(), tiny_vision(), scales=(16, 4)).eval()
    loud.load_state_dict(quiet.state_dict())
    x = dict(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot, labels=ids)
    with torch.no_grad():
        a, b = quiet(**x), loud(**x)
    assert b.router_logits is not None and len(b.router_logits) == 2
    assert a.loss.item() == b.loss.item()


def _gemma2_capped():
    from transformers import Gemma2Config, Gemma2ForCausalLM

    return Gemma2ForCausalLM(Gemma2Config(vocab_size=120, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                          num_attention_heads=4, num_key_value_heads=2, head_dim=12, pad_token_id=0))


def _mixtral_with_router_logits():
    llm = tiny_llm("mixtral")
    llm.config.output_router_logits = True
    return llm


def _lfm2():
    from transformers import Lfm2Config, Lfm2ForCausalLM

    return Lfm2ForCausalLM(Lfm2Config(vocab_size=120, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, pad_token_id=0,
                                      layer_types=["conv", "full_attention"]))


def _glm4():
    """Post-norms under other names (post_self_attn_layernorm, post_mlp_layernorm): not guessed at."""
    from transformers import Glm4Config, Glm4ForCausalLM

    return Glm4ForCausalLM(Glm4Config(vocab_size=120, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, head_dim=12, pad_token_id=0))


@pytest.mark.parametrize("arch", ["gemma3_text", "mixtral", "phi"])
def test_bf16_and_4bit_llm_on_each_new_block_shape(tmp_path, arch):
    """Post-norm, MoE and parallel blocks at the precisions users run: a bf16 LLM follows fp32, and with
    a 4-bit LLM (bitsandbytes through BitsAndBytesConfig) the fusion still trains (finite non-zero
    gradients reach the adapters)."""
    pytest.importorskip("bitsandbytes")
    tiny_llm(arch).save_pretrained(tmp_path / arch)
    x = inputs("ademvl", image_rows=(1, 1))
    models = {}
    for name, kwargs in (("fp32", {}), ("bf16", {"dtype": torch.bfloat16}), ("4bit", {"quantization": "4bit"})):
        torch.manual_seed(0)
        models[name] = liven(VLModel.from_backbones(tmp_path / arch, tiny_vision(), scales=(16, 4), **kwargs))
        for p in models[name].trainable_parameters().values():
            p.data = p.data.float()
        models[name].load_state_dict(models["fp32"].trainable_parameters(), strict=False)
    with torch.no_grad():
        reference = models["fp32"].eval()(**x).logits
        logits = models["bf16"].eval()(**x).logits.float()
        error = ((logits - reference).abs().mean() / reference.abs().mean()).item()
        assert error < 0.05, error
        # (NF4 on 48-wide random weights is too coarse to compare logits with; tests/test_quantization.py
        # compares 4-bit with fp32 on a 64-wide model.)
        assert torch.isfinite(models["4bit"].eval()(**x).logits).all()
    labels = x["input_ids"].clone()
    labels[:, :-4] = -100
    reached = {}
    for name in ("fp32", "4bit"):
        model = models[name].train()
        model(**x, labels=labels).loss.backward()
        reached[name] = {k for k, p in model.trainable_parameters().items() if p.grad is not None}
    assert reached["4bit"] == reached["fp32"] and reached["4bit"]  # the same parts learn as in fp32
    grads = [models["4bit"].trainable_parameters()[k].grad for k in reached["4bit"]]
    assert all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
