"""Only the method's weights learn; everything of the LLM and vision tower stays frozen."""
import torch

from tiny import batch, tiny_model

SPEC_TRAINABLE = {"method.patch_projector.fc1.weight", "method.patch_projector.fc1.bias",
                  "method.patch_projector.fc2.weight", "method.patch_projector.fc2.bias",
                  "method.cls_projector.fc1.weight", "method.cls_projector.fc1.bias",
                  "method.cls_projector.fc2.weight", "method.cls_projector.fc2.bias",
                  "method.pos_keys", "method.pos_values"}


def test_trainable_set_is_exactly_spec():
    model = tiny_model("llama")
    names = set(model.trainable_parameters())
    adapters = {n for n in names if ".mlp.adapter." in n}
    assert names - adapters == SPEC_TRAINABLE
    blocks = len(model.vision.blocks)
    assert adapters == {f"vision.model.encoder.layers.{i}.mlp.adapter.fc{k}.weight" for i in range(blocks) for k in (1, 2)}
    d, dv, n_v = 48, 32, 16 + 4
    expected = 2 * (dv * 128 + 128 + 128 * d + d) + 2 * n_v * d + blocks * 2 * dv * 12
    assert model.parameter_counts()["trainable"] == expected


def test_optimizer_step_moves_only_trainable_weights():
    model = tiny_model("llama").train()
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainable_before = {n: p.detach().clone() for n, p in model.trainable_parameters().items()}
    ids, pixels, has_image, slot = batch(batch_size=2, image_rows=(1, 0))
    labels = ids.clone()
    labels[:, :5] = -100
    optimizer = torch.optim.AdamW(model.trainable_parameters().values(), lr=1e-2)
    loss = model(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot, labels=labels).loss
    loss.backward()
    last_block = len(model.vision.blocks) - 1  # features come from the penultimate block
    for name, p in model.trainable_parameters().items():
        if f"layers.{last_block}.mlp.adapter" in name:
            assert p.grad is None  # SPEC keeps an adapter there (counted in 4.5M) that the features never reach
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    optimizer.step()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, frozen_before[name]), name
    moved = [n for n, p in model.trainable_parameters().items() if not torch.equal(p, trainable_before[n])]
    assert len(moved) == len(trainable_before) - 2


def test_backbones_stay_in_eval_mode_while_training():
    model = tiny_model("llama").train()
    assert not model.llm.training and not model.vision.model.training
    adapter = model.vision.blocks[0].mlp.adapter
    assert adapter.training and model.method.training
    model.eval()
    assert not adapter.training


def test_loss_falls_on_answer_tokens_only():
    model = tiny_model("llama")
    ids, pixels, has_image, slot = batch(batch_size=2, image_rows=(1, 0))
    labels = torch.full_like(ids, -100)
    labels[:, 6:] = ids[:, 6:]
    with torch.no_grad():
        loss = model(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot, labels=labels).loss
        logits = model(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot).logits
    expected = torch.nn.functional.cross_entropy(logits[:, 5:-1].reshape(-1, logits.shape[-1]), ids[:, 6:].reshape(-1))
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


def test_num_items_in_batch_weighs_every_answer_token_equally():
    """HF's contract: loss = sum of answer-token losses / num_items_in_batch, so two micro-batches
    of different answer lengths add up to the loss of the joined batch."""
    from tiny import batch, tiny_model

    model = tiny_model("llama", seed=0)
    ids, pixels, has_image, slot = batch(batch_size=2, length=9)
    labels = torch.full_like(ids, -100)
    labels[0, 6:] = ids[0, 6:]   # 3 answer tokens (2 scored after the shift)
    labels[1, 3:] = ids[1, 3:]   # 6 answer tokens
    kwargs = dict(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot)
    with torch.no_grad():
        whole = model(**kwargs, labels=labels).loss
        n = int((labels[:, 1:] != -100).sum())
        parts = sum(
            model(**{k: v[i:i + 1] for k, v in kwargs.items()}, labels=labels[i:i + 1], num_items_in_batch=n).loss
            for i in range(2))
        means = sum(model(**{k: v[i:i + 1] for k, v in kwargs.items()}, labels=labels[i:i + 1]).loss
                    for i in range(2)) / 2
    assert torch.allclose(parts, whole, atol=1e-6)
    assert not torch.allclose(means, whole, atol=1e-4)  # the unweighted mean of means differs
