"""The baselines (bottleneck, lavin, memvp, llava-lora) train, and equal the plain LLM
where their fusion is silent."""
import pytest
import torch

from tiny import tiny_llm
from tiny_methods import METHODS, build, inputs, liven, text_columns


@pytest.mark.parametrize("method", METHODS)
def test_at_init_text_only_equals_plain_llm(method):
    """Zero-initialised adapters, no visual tokens, u_m masked: the plain LLM's logits
    (for bottleneck/lavin the masked u_m shifts positions by one, which RoPE ignores)."""
    model = build(method)
    reference = tiny_llm("llama", 0)
    x = inputs(method, image_rows=(0, 0))
    with torch.no_grad():
        ours = text_columns(method, model(**x).logits)
        plain = reference(input_ids=text_columns(method, x["input_ids"])).logits
    assert ours.shape == plain.shape
    assert (ours - plain).abs().max().item() <= 1e-5


@pytest.mark.parametrize("method", ["bottleneck", "lavin"])
def test_masked_modality_token_only_shifts_positions(method):
    """GPT-2 has absolute positions: with u_m masked the model is the plain LLM one position on."""
    model = build(method, arch="gpt2")
    reference = tiny_llm("gpt2", 0)
    x = inputs(method, image_rows=(0, 0))
    ids = x["input_ids"][:, 1:]
    with torch.no_grad():
        ours = model(**x).logits[:, 1:]
        shifted = reference(input_ids=ids, position_ids=torch.arange(1, ids.shape[1] + 1).expand_as(ids)).logits
    assert (ours - shifted).abs().max().item() <= 1e-5


def test_unmasked_modality_token_reaches_the_text():
    x = inputs("bottleneck", image_rows=(0, 0))
    masked = build("bottleneck")
    unmasked = build("bottleneck", mask_modality=False)
    with torch.no_grad():
        a, b = masked(**x).logits, unmasked(**x).logits
        masked.method.modality_embedding.weight.normal_()
        c = masked(**x).logits
    assert (a - b).abs().max().item() > 1e-3
    assert torch.equal(a[:, 1:], c[:, 1:])  # masked: u_m is inert for the text whatever its value


@pytest.mark.parametrize("method", METHODS)
def test_image_changes_logits_once_live(method):
    model = liven(build(method))
    x = inputs(method, image_rows=(1, 1))
    with torch.no_grad():
        with_image = model(**x).logits
        x2 = dict(x, pixel_values=torch.randn_like(x["pixel_values"]))
        other_image = model(**x2).logits
    assert (with_image - other_image).abs().max().item() > 1e-4


@pytest.mark.parametrize("method", METHODS)
def test_training_step_moves_only_trainable_weights(method):
    model = liven(build(method)).train()
    assert not model.llm.training and not model.vision.model.training
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    x = inputs(method, image_rows=(1, 0))
    labels = x["input_ids"].clone()
    labels[:, :-4] = -100
    loss = model(**x, labels=labels).loss
    loss.backward()
    no_grad = {n for n, p in model.trainable_parameters().items() if p.grad is None or not p.grad.abs().any()}
    last = len(model.vision.blocks) - 1
    expected = {
        # u_m is masked and bottleneck has no router: it is inert, its gradient exactly zero.
        "bottleneck": {"method.modality_embedding.weight"},
        "lavin": set(),
        # the reference's unused Embedding(2, d); features come from the penultimate block.
        "memvp": {"method.modality_embedding.weight"} | {n for n in no_grad if f"layers.{last}.mlp.adapter" in n},
        "llava-lora": {n for n in no_grad if f"layers.{last}.mlp.adapter" in n},
    }[method]
    assert no_grad == expected
    if method in ("memvp", "llava-lora"):
        assert len(expected) >= 2  # the last vision block's adapter is among them
    torch.optim.AdamW(model.trainable_parameters().values(), lr=1e-2).step()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, frozen[name]), name


def test_memvp_with_fusion_off_equals_plain_llm_even_with_images():
    model = liven(build("memvp", fusion=False))
    x = inputs("memvp", image_rows=(1, 1))
    with torch.no_grad():
        ours = model(**x).logits
        plain = tiny_llm("llama", 0)(input_ids=x["input_ids"]).logits
    assert (ours - plain).abs().max().item() <= 1e-5
