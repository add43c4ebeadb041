"""Gradient checkpointing: the same loss and gradients as without it, for every method, with
the adapters' dropout active, and fewer activations kept for the backward pass."""
import warnings

import pytest
import torch

from ademvl.architectures import decoder_blocks
from tiny_methods import ALL_METHODS, build, inputs, liven


def loss_and_grads(method, arch, checkpointing):
    """One training step's loss, gradients and the bytes the LLM side saves for backward
    (same seed for dropout)."""
    model = liven(build(method, arch=arch)).train()
    if checkpointing:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # transformers 5.24 renamed it activation_checkpointing_enable
            model.gradient_checkpointing_enable()
    x = inputs(method, image_rows=(1, 0))
    labels = x["input_ids"].clone()
    labels[:, :-4] = -100
    saved = []

    def pack(tensor):
        saved.append(tensor.numel() * tensor.element_size())
        return tensor

    torch.manual_seed(7)
    visual = model.encode_images(x["pixel_values"], x["has_image"], 2)  # with gradients, outside the count
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):  # what the LLM side keeps
        loss = model(input_ids=x["input_ids"], image_slot=x["image_slot"], labels=labels,
                     **visual.as_model_kwargs()).loss
    loss.backward()
    grads = {name: p.grad for name, p in model.trainable_parameters().items()}
    return loss.detach(), grads, sum(saved)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("method", ALL_METHODS)
def test_checkpointed_equals_plain(method, arch):
    plain_loss, plain, plain_bytes = loss_and_grads(method, arch, checkpointing=False)
    loss, grads, checkpointed_bytes = loss_and_grads(method, arch, checkpointing=True)
    assert torch.allclose(loss, plain_loss, rtol=0, atol=1e-6)
    assert {n for n, g in grads.items() if g is None} == {n for n, g in plain.items() if g is None}
    with_grad = [n for n, g in plain.items() if g is not None]
    assert len(with_grad) > 0.5 * len(plain)  # the visual memory, projectors, adapters all receive one
    for name in with_grad:
        assert (grads[name] - plain[name]).abs().max().item() <= 1e-6, name
    assert checkpointed_bytes < 0.6 * plain_bytes  # the blocks' activations are recomputed, not kept


def test_visual_memory_gets_its_whole_gradient_under_checkpointing():
    """The case the old side channel broke: E1/E2 and the projectors behind K and U."""
    _, plain, _ = loss_and_grads("ademvl", "llama", checkpointing=False)
    _, grads, _ = loss_and_grads("ademvl", "llama", checkpointing=True)
    for name in ("method.pos_keys", "method.pos_values", "method.patch_projector.fc1.weight",
                 "method.cls_projector.fc1.weight"):
        assert plain[name].abs().sum() > 0
        assert torch.allclose(grads[name], plain[name], rtol=0, atol=1e-6), name


def test_blocks_are_recomputed_in_backward():
    model = liven(build("memvp")).train()
    model.activation_checkpointing_enable()
    runs = []
    for block in decoder_blocks(model.llm):
        block.mlp.base_layer.act_fn.register_forward_hook(lambda *_: runs.append(torch.is_grad_enabled()))
    x = inputs("memvp")
    labels = x["input_ids"].clone()
    labels[:, :-4] = -100
    loss = model(**x, labels=labels).loss
    in_forward = len(runs)
    loss.backward()
    assert in_forward == 2 and len(runs) == 4  # each of the 2 blocks ran again during backward


def test_eval_mode_runs_without_checkpointing_and_keeps_the_frozen_llm_in_eval():
    model = build("ademvl")
    model.activation_checkpointing_enable()
    model.train()
    assert all(block.training for block in decoder_blocks(model.llm))  # checkpointing needs the block's flag
    assert not any(m.training for block in decoder_blocks(model.llm) for m in block.children())
    model.eval()
    assert not any(block.training for block in decoder_blocks(model.llm))


def test_reentrant_checkpointing_is_refused_in_one_line():
    model = build("ademvl")
    with pytest.raises(ValueError, match="use_reentrant=False") as info:
        model.activation_checkpointing_enable({"use_reentrant": True})
    assert "\n" not in str(info.value)


def test_recipe_key_trains_to_the_same_weights(tmp_path):
    """`train.gradient_checkpointing=true` through the trainer: same weights after 3 steps with dropout."""
    from safetensors.torch import load_file

    from ademvl.training import load_recipe, train
    from train_tiny import write_recipe

    path = write_recipe(tmp_path)
    runs = {}
    for flag in ("false", "true"):
        recipe = load_recipe(path, ["data.limit=6", "train.batch_size=2", "train.epochs=1",
                                    f"train.gradient_checkpointing={flag}"])
        result = train(recipe, output_dir=tmp_path / f"run-{flag}", progress=False)
        runs[flag] = load_file(str(result.run_dir / "adapter" / "ademvl_adapter.safetensors"))
    assert runs["true"].keys() == runs["false"].keys()
    moved = 0
    for name, tensor in runs["false"].items():
        assert (runs["true"][name] - tensor).abs().max().item() <= 1e-6, name
        moved += int(tensor.abs().sum() > 0)
    assert moved > 0
