"""With its fusion switched off, the model is the plain Hugging Face LLM."""
import copy

import pytest
import torch

from ademvl.model import VLModel
from tiny import LLM_ARCHS, VISION_KINDS, batch, tiny_llm, tiny_vision

# every LLM with CLIP and SigLIP; the other towers with a pre-norm and a GPT-2 block
PAIRS = ([(arch, vision) for arch in LLM_ARCHS for vision in ("clip", "siglip")]
         + [(arch, vision) for arch in ("llama", "gpt2") for vision in VISION_KINDS if vision not in ("clip", "siglip")])


@pytest.mark.parametrize("arch, vision", PAIRS)
def test_alpha_zero_without_cls_equals_plain_llm(arch, vision):
    llm = tiny_llm(arch)
    reference = copy.deepcopy(llm)
    model = VLModel.from_backbones(llm, tiny_vision(vision), alpha=0.0, use_cls=False, scales=(16, 4)).eval()
    with torch.no_grad():
        model.method.pos_values.normal_()  # the fusion path is live, only α silences it
    ids, pixels, has_image, slot = batch()
    with torch.no_grad():
        ours = model(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot).logits
        plain = reference(input_ids=ids).logits
    assert ours.shape == plain.shape
    assert (ours - plain).abs().max().item() <= 1e-5


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_fusion_on_changes_logits(arch):
    """The converse: the same model with α = 0.1 differs, so the test above is not vacuous."""
    llm = tiny_llm(arch)
    reference = copy.deepcopy(llm)
    model = VLModel.from_backbones(llm, tiny_vision(), alpha=0.1, use_cls=False, scales=(16, 4)).eval()
    with torch.no_grad():
        model.method.pos_values.normal_()
    ids, pixels, has_image, slot = batch()
    with torch.no_grad():
        ours = model(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot).logits
    assert (ours - reference(input_ids=ids).logits).abs().max().item() > 1e-3


def test_backbones_load_from_pretrained_directories(tmp_path):
    llm, vision = tiny_llm("qwen2"), tiny_vision("clip")
    llm.save_pretrained(tmp_path / "llm")
    vision.save_pretrained(tmp_path / "vision")
    model = VLModel.from_backbones(tmp_path / "llm", tmp_path / "vision", alpha=0.0, use_cls=False, scales=(16,)).eval()
    assert model.config.llm_name_or_path == str(tmp_path / "llm")
    ids, pixels, has_image, slot = batch()
    with torch.no_grad():
        ours = model(input_ids=ids, pixel_values=pixels, has_image=has_image).logits
        assert (ours - llm(input_ids=ids).logits).abs().max().item() <= 1e-5
    assert all(not p.requires_grad for p in model.llm.parameters())


def test_unsupported_architecture_is_named():
    from transformers import FalconConfig, FalconForCausalLM

    llm = FalconForCausalLM(FalconConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=4))
    with pytest.raises(ValueError, match="'falcon' is not supported"):
        VLModel.from_backbones(llm, tiny_vision(), scales=(16,))


def test_missing_backbone_path_is_one_clear_line(tmp_path):
    with pytest.raises(ValueError, match="cannot load LLM from") as info:
        VLModel.from_backbones(tmp_path / "nowhere", tiny_vision())
    assert "\n" not in str(info.value)
