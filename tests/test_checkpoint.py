"""Adapters: only trainable weights saved; loading checks they fit; bad files give one line."""
import json

import pytest
import torch

from ademvl.checkpoint import CONFIG_NAME, WEIGHTS_NAME, AdapterError
from ademvl.model import VLModel
from tiny import batch, tiny_llm, tiny_model, tiny_vision


def logits(model):
    ids, pixels, has_image, slot = batch(batch_size=2, image_rows=(1, 0))
    with torch.no_grad():
        return model(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot).logits


def test_round_trip_gives_identical_logits(tmp_path):
    trained = tiny_model("llama", seed=0)
    trained.save_adapter(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME, "config.json", "processor_config.json"])
    fresh = VLModel.from_backbones(tiny_llm("llama", 0), tiny_vision("clip", 1), scales=(16, 4)).eval()
    assert not torch.equal(logits(fresh), logits(trained))
    fresh.load_adapter(tmp_path)
    assert torch.equal(logits(fresh), logits(trained))


def test_only_trainable_weights_are_saved(tmp_path):
    from safetensors.torch import load_file

    model = tiny_model("llama")
    model.save_adapter(tmp_path)
    assert set(load_file(str(tmp_path / WEIGHTS_NAME))) == set(model.trainable_parameters())


def test_from_adapter_rebuilds_settings_and_backbones(tmp_path):
    tiny_llm("llama", 0).save_pretrained(tmp_path / "llm")
    tiny_vision("clip", 1).save_pretrained(tmp_path / "vision")
    model = VLModel.from_backbones(tmp_path / "llm", tmp_path / "vision", scales=(16,), gamma=0.25, alpha=0.2)
    with torch.no_grad():
        model.method.pos_values.normal_()
    model.save_adapter(tmp_path / "adapter")
    again = VLModel.from_adapter(tmp_path / "adapter").eval()
    assert again.method.settings.gamma == 0.25 and tuple(again.method.settings.scales) == (16,)
    assert torch.equal(logits(again), logits(model.eval()))


def test_other_llm_size_is_refused_naming_it(tmp_path):
    tiny_model("llama").save_adapter(tmp_path)
    from transformers import LlamaConfig, LlamaForCausalLM

    other = LlamaForCausalLM(LlamaConfig(vocab_size=120, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2))
    model = VLModel.from_backbones(other, tiny_vision(), scales=(16, 4))
    with pytest.raises(AdapterError, match="hidden_size=48.*hidden_size=64") as info:
        model.load_adapter(tmp_path)
    assert "\n" not in str(info.value)


def test_other_vision_width_is_refused(tmp_path):
    tiny_model("llama").save_adapter(tmp_path)
    from transformers import CLIPVisionConfig, CLIPVisionModel

    wide = CLIPVisionModel(CLIPVisionConfig(hidden_size=64, intermediate_size=64, num_hidden_layers=3,
                                            num_attention_heads=4, image_size=32, patch_size=8))
    with pytest.raises(AdapterError, match="vision tower.*hidden_size=32.*hidden_size=64"):
        VLModel.from_backbones(tiny_llm(), wide, scales=(16, 4)).load_adapter(tmp_path)


def test_other_settings_are_refused(tmp_path):
    tiny_model("llama", gamma=0.1).save_adapter(tmp_path)
    with pytest.raises(AdapterError, match="gamma=0.1.*gamma=0.3"):
        tiny_model("llama", gamma=0.3).load_adapter(tmp_path)


def test_corrupt_weights_give_one_line(tmp_path):
    tiny_model("llama").save_adapter(tmp_path)
    (tmp_path / WEIGHTS_NAME).write_bytes(b"\x00garbage" * 10)
    with pytest.raises(AdapterError, match="corrupt") as info:
        tiny_model("llama").load_adapter(tmp_path)
    assert "\n" not in str(info.value)


def test_corrupt_or_missing_config(tmp_path):
    with pytest.raises(AdapterError, match="not an ademvl adapter directory"):
        tiny_model("llama").load_adapter(tmp_path)
    tiny_model("llama").save_adapter(tmp_path)
    (tmp_path / CONFIG_NAME).write_text("{not json")
    with pytest.raises(AdapterError, match="not valid JSON"):
        tiny_model("llama").load_adapter(tmp_path)


def test_interrupted_save_keeps_the_previous_adapter(tmp_path, monkeypatch):
    model = tiny_model("llama")
    model.save_adapter(tmp_path)
    before = (tmp_path / WEIGHTS_NAME).read_bytes()
    import ademvl.checkpoint as ckpt

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        model.save_adapter(tmp_path)
    assert (tmp_path / WEIGHTS_NAME).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME, "config.json", "processor_config.json"])  # no temp files left
    json.loads((tmp_path / CONFIG_NAME).read_text())


def test_from_adapter_returns_eval_mode(tmp_path):
    """Loaded for use, as from_pretrained: two identical forwards agree (no dropout)."""
    tiny_llm("llama", 0).save_pretrained(tmp_path / "llm")
    tiny_vision("clip", 1).save_pretrained(tmp_path / "vision")
    VLModel.from_backbones(tmp_path / "llm", tmp_path / "vision", scales=(16,)).save_adapter(tmp_path / "adapter")
    loaded = VLModel.from_adapter(tmp_path / "adapter")
    assert not loaded.training and not any(m.training for m in loaded.modules())
    assert torch.equal(logits(loaded), logits(loaded))


def test_adapter_files_are_not_mistaken_for_peft_and_old_names_still_load(tmp_path):
    """peft reads `adapter_config.json` as its own format: an ademvl adapter uses its own names.
    Directories saved under the former (peft's) names load unchanged."""
    model = tiny_model("llama")
    model.save_adapter(tmp_path / "new")
    assert not (tmp_path / "new" / "adapter_config.json").exists()
    from peft import PeftConfig

    with pytest.raises(ValueError):
        PeftConfig.from_pretrained(str(tmp_path / "new"))
    old = tmp_path / "old"
    old.mkdir()
    (old / "adapter_model.safetensors").write_bytes((tmp_path / "new" / WEIGHTS_NAME).read_bytes())
    (old / "adapter_config.json").write_text((tmp_path / "new" / CONFIG_NAME).read_text())
    fresh = VLModel.from_backbones(tiny_llm("llama", 0), tiny_vision("clip", 1), scales=(16, 4)).eval()
    fresh.load_adapter(old)
    assert torch.equal(logits(fresh), logits(model.eval()))
