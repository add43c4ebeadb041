"""generate(): the KV cache changes nothing, batching changes nothing."""
import pytest
import torch

from tiny import VOCAB, batch, tiny_model

PAD = 0


def greedy_by_recomputing(model, ids, pixels, has_image, slot, steps):
    """Greedy decoding that reruns the whole sequence through forward() at each step (no cache)."""
    seq = ids
    for _ in range(steps):
        with torch.no_grad():
            logits = model(input_ids=seq, pixel_values=pixels, has_image=has_image, image_slot=slot, use_cache=False).logits
        seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return seq


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_cached_greedy_equals_recomputed_greedy(arch):
    model = tiny_model(arch, alpha=0.5)
    ids, pixels, has_image, slot = batch(batch_size=2, image_rows=(1, 0))
    cached = model.generate(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot,
                            max_new_tokens=8, do_sample=False, pad_token_id=PAD, eos_token_id=None)
    expected = greedy_by_recomputing(model, ids, pixels, has_image, slot, 8)
    assert torch.equal(cached, expected)


def test_vision_tower_runs_once_per_generate_call():
    model = tiny_model("llama")
    calls = []
    model.vision.model.register_forward_pre_hook(lambda *a: calls.append(1))
    ids, pixels, has_image, slot = batch(batch_size=2, image_rows=(1, 1))
    model.generate(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot,
                   max_new_tokens=6, do_sample=False, pad_token_id=PAD, eos_token_id=None)
    assert len(calls) == 1


def test_batched_prompts_of_different_lengths_match_single_prompts():
    model = tiny_model("qwen2", alpha=0.5)
    g = torch.Generator().manual_seed(3)
    prompts = [torch.randint(3, VOCAB, (n,), generator=g) for n in (5, 9, 7)]
    pixels = torch.randn(3, 3, 32, 32, generator=g)
    has_image = torch.tensor([1, 0, 1])
    slots = [1, -1, 1]
    width = max(len(p) for p in prompts)
    ids = torch.full((3, width), PAD)
    mask = torch.zeros(3, width, dtype=torch.long)
    padded_slot = []
    for row, (p, s) in enumerate(zip(prompts, slots)):
        ids[row, width - len(p):] = p  # left padding
        mask[row, width - len(p):] = 1
        padded_slot.append(s + width - len(p) if s >= 0 else -1)
    batched = model.generate(input_ids=ids, attention_mask=mask, pixel_values=pixels, has_image=has_image,
                             image_slot=torch.tensor(padded_slot), max_new_tokens=6, do_sample=False,
                             pad_token_id=PAD, eos_token_id=None)
    for row, (p, s) in enumerate(zip(prompts, slots)):
        single = model.generate(input_ids=p[None], pixel_values=pixels[row:row + 1], has_image=has_image[row:row + 1],
                                image_slot=torch.tensor([s]), max_new_tokens=6, do_sample=False,
                                pad_token_id=PAD, eos_token_id=None)
        assert torch.equal(batched[row, width:], single[0, len(p):])


def test_top_p_sampling_is_seeded_and_uses_the_cache():
    model = tiny_model("llama")
    ids, pixels, has_image, slot = batch(batch_size=2, image_rows=(1, 0))
    kwargs = dict(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot, max_new_tokens=6,
                  do_sample=True, top_p=0.75, temperature=0.9, pad_token_id=PAD, eos_token_id=None)
    torch.manual_seed(5)
    a = model.generate(**kwargs)
    torch.manual_seed(5)
    b = model.generate(**kwargs)
    torch.manual_seed(6)
    c = model.generate(**kwargs)
    assert a.shape == (2, ids.shape[1] + 6) and torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(a[:, : ids.shape[1]], ids)
