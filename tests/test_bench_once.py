"""The cost claims the benchmark relies on: the vision tower and the method's encoder run once
per batch / per generate call (not per layer or per step), and the adaptive drop selects the
threshold with kthvalue (no sort) in place."""
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ademvl.fusion import adaptive_drop_
from tiny import batch, tiny_model

PAD = 0


def count_calls(model):
    calls = {"vision": 0, "encode": 0}
    model.vision.model.register_forward_pre_hook(lambda *a, **k: calls.__setitem__("vision", calls["vision"] + 1))
    encode = model.method.encode

    def counted(*args, **kwargs):
        calls["encode"] += 1
        return encode(*args, **kwargs)

    model.method.encode = counted
    return calls


def test_generate_runs_vision_and_encode_once():
    model = tiny_model("llama")
    calls = count_calls(model)
    ids, pixels, has_image, slot = batch(batch_size=2, image_rows=(1, 1))
    out = model.generate(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot,
                         max_new_tokens=5, min_new_tokens=5, do_sample=False, pad_token_id=PAD, eos_token_id=None)
    assert out.shape[1] == ids.shape[1] + 5
    assert calls == {"vision": 1, "encode": 1}


def test_forward_encodes_once_for_all_layers():
    model = tiny_model("llama")
    assert model.llm.config.num_hidden_layers > 1
    calls = count_calls(model)
    ids, pixels, has_image, slot = batch(batch_size=2, image_rows=(1, 0))
    labels = ids.clone()
    model.train()
    model(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot, labels=labels).loss.backward()
    assert calls == {"vision": 1, "encode": 1}


class OpLog(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def test_drop_uses_one_selection_per_layer_and_no_sort():
    model = tiny_model("llama")
    ids, pixels, has_image, slot = batch(batch_size=2, image_rows=(1, 1))
    with torch.no_grad(), OpLog() as log:
        model(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot)
    assert log.ops.count("kthvalue") == model.llm.config.num_hidden_layers
    assert not {"sort", "topk", "argsort", "msort"} & set(log.ops)


def test_drop_is_in_place():
    scores = torch.randn(2, 5, 40)
    kept = scores.clone()
    out = adaptive_drop_(scores, 0.1)
    assert out.data_ptr() == scores.data_ptr()
    assert int((out == 0).sum()) == 2 * 5 * 4  # ⌊0.1·40⌋ = 4 smallest per row dropped
    assert torch.equal(out[out != 0], kept[out != 0])


def test_tower_features_are_the_plain_hidden_states():
    """The blocks a method reads are those of a plain Hugging Face run with every hidden state
    (raw block outputs, also the last block of SigLIP, whose last_hidden_state is normed)."""
    from ademvl.vision import VisionTower
    from tiny import tiny_vision

    for kind in ("clip", "siglip"):
        tower = VisionTower(tiny_vision(kind, layers=3))
        pixels = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            features = tower(pixels, [-2, 1, -1])
            everything = tower.model(pixel_values=pixels, output_hidden_states=True).hidden_states
        assert len(everything) == 4
        assert torch.equal(features[-2], everything[2]) and torch.equal(features[1], everything[1])
        assert torch.equal(features[-1], everything[3])
