"""The baselines generate with the KV cache exactly, and save/load their own weights."""
import pytest
import torch

from ademvl.model import VLModel
from tiny import tiny_llm, tiny_vision
from tiny_methods import METHODS, PAD, build, inputs, liven


def greedy_by_recomputing(model, x, steps):
    seq = x["input_ids"]
    for _ in range(steps):
        with torch.no_grad():
            logits = model(**dict(x, input_ids=seq), use_cache=False).logits
        seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return seq


@pytest.mark.parametrize("method, arch, settings", [(m, "llama", {}) for m in METHODS] + [
    ("lavin", "gpt2", {}),                                   # absolute positions, 4-D mask through the cache
    ("bottleneck", "qwen2", {"mask_modality": False, "before_ffn": True}),
])
def test_cached_greedy_equals_recomputed_greedy(method, arch, settings):
    model = liven(build(method, arch=arch, **settings))
    x = inputs(method, image_rows=(1, 0))
    cached = model.generate(**x, max_new_tokens=6, do_sample=False, pad_token_id=PAD, eos_token_id=None)
    assert torch.equal(cached, greedy_by_recomputing(model, x, 6))


def test_lavin_left_padded_batch_matches_single_prompts():
    """The modality token sits before the padding; router weights are reused per row at each step."""
    model = liven(build("lavin"))
    x = inputs("lavin", image_rows=(1, 0))
    ids = x["input_ids"].clone()
    mask = torch.ones_like(ids)
    ids[1, :4], mask[1, :4] = PAD, 0
    batched = model.generate(**dict(x, input_ids=ids), attention_mask=mask, max_new_tokens=5, do_sample=False,
                             pad_token_id=PAD, eos_token_id=None)
    for row, start in ((0, 0), (1, 4)):
        single = model.generate(input_ids=ids[row:row + 1, start:], pixel_values=x["pixel_values"][row:row + 1],
                                has_image=x["has_image"][row:row + 1], image_slot=x["image_slot"][row:row + 1] - start,
                                max_new_tokens=5, do_sample=False, pad_token_id=PAD, eos_token_id=None)
        assert torch.equal(batched[row, ids.shape[1]:], single[0, ids.shape[1] - start:])


@pytest.mark.parametrize("method", METHODS)
def test_save_load_round_trip_gives_identical_logits(method, tmp_path):
    model = liven(build(method))
    model.save_adapter(tmp_path / "adapter")
    fresh = build(method)
    x = inputs(method, image_rows=(1, 0))
    with torch.no_grad():
        before = fresh(**x).logits
        fresh.load_adapter(tmp_path / "adapter")
        after, expected = fresh(**x).logits, model(**x).logits
    assert not torch.equal(before, expected)
    assert torch.equal(after, expected)
    rebuilt = VLModel.from_adapter(tmp_path / "adapter", llm=tiny_llm("llama", 0), vision=tiny_vision("clip", 1)).eval()
    with torch.no_grad():
        assert torch.equal(rebuilt(**x).logits, expected)
