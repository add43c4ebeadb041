"""Adapters by Hub id, through huggingface_hub's own cache (offline here: a cache laid out as the
Hub client lays it out), and uploads that carry only the adapter; what an upload holds loads through
transformers' Auto classes and pipeline by its repo id."""
import os

import pytest
import torch

from ademvl.checkpoint import CONFIG_NAME, WEIGHTS_NAME, AdapterError
from ademvl.hub import stage_adapter
from ademvl.model import VLModel
from tiny import batch, tiny_image_processor, tiny_llm, tiny_tokenizer, tiny_vision, tiny_model


def hub_cache_with(adapter_dir, cache, repo="someone/tiny-ademvl", commit="0" * 40):
    """`cache/models--someone--tiny-ademvl/{refs/main, snapshots/<commit>/…}`, huggingface_hub's layout."""
    root = cache / ("models--" + repo.replace("/", "--"))
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for item in adapter_dir.iterdir():
        (snapshot / item.name).write_bytes(item.read_bytes())
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    return repo


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_from_adapter_and_load_for_eval_take_a_hub_id(tmp_path, offline_cache):
    from ademvl.evaluation.loading import load_for_eval
    from tiny import tiny_image_processor, tiny_tokenizer

    tok = tiny_tokenizer()
    llm_dir, vision_dir = tmp_path / "llm", tmp_path / "vision"
    tiny_llm("llama", 0, vocab=len(tok)).save_pretrained(llm_dir)
    tok.save_pretrained(llm_dir)
    tiny_vision("clip", 1).save_pretrained(vision_dir)
    tiny_image_processor(32).save_pretrained(vision_dir)
    model = VLModel.from_backbones(llm_dir, vision_dir, scales=(16, 4))
    with torch.no_grad():
        model.method.pos_values.normal_()
    staged = stage_adapter(model, tmp_path / "staged")
    repo = hub_cache_with(staged, offline_cache)

    ids, pixels, has_image, slot = batch()
    expected = model.eval()(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot).logits
    loaded = VLModel.from_adapter(repo)
    got = loaded(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot).logits
    assert torch.equal(got, expected)
    evaluated, _, _ = load_for_eval(repo, device="cpu")
    assert torch.equal(evaluated(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot).logits,
                       expected)


def test_unknown_hub_id_offline_is_one_line(offline_cache):
    with pytest.raises(AdapterError, match="someone/absent") as info:
        VLModel.from_adapter("someone/absent")
    assert "\n" not in str(info.value)


def test_upload_stages_only_the_adapter(tmp_path):
    model = tiny_model("llama")
    staged = stage_adapter(model, tmp_path / "staged")
    assert sorted(p.name for p in staged.iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME, "README.md", "config.json",
                                                               "processor_config.json"])
    assert "pipeline(\"image-text-to-text\", model=\"<this repo>\")" in (staged / "README.md").read_text()
    size = sum(p.stat().st_size for p in staged.iterdir())
    trainable = sum(p.numel() * 4 for p in model.trainable_parameters().values())
    assert size < trainable + 64 * 1024  # the trainable weights and a little text, no backbone


def test_quantized_loading_works_from_an_adapter_directory(tmp_path):
    from ademvl.evaluation.loading import load_for_eval
    from ademvl.quantized import quantization_of

    pytest.importorskip("bitsandbytes")
    tiny_llm("llama", 0).save_pretrained(tmp_path / "llm")
    tiny_vision("clip", 1).save_pretrained(tmp_path / "vision")
    saved = VLModel.from_backbones(tmp_path / "llm", tmp_path / "vision", scales=(16,))
    saved.save_adapter(tmp_path / "adapter")
    tiny_tokenizer().save_pretrained(tmp_path / "llm")
    tiny_image_processor(32).save_pretrained(tmp_path / "vision")
    model, _, _ = load_for_eval(tmp_path / "adapter", quantization="4bit", device="cpu")
    assert quantization_of(model.llm) == "4bit"
    eight = VLModel.from_adapter(tmp_path / "adapter", quantization="8bit")
    assert quantization_of(eight.llm) == "8bit"
    for loaded in (model, eight):  # the adapter's own weights load exactly, in fp32
        for name, p in saved.trainable_parameters().items():
            assert torch.equal(loaded.trainable_parameters()[name], p.detach()), name


def test_an_uploaded_adapter_loads_by_repo_id_through_the_auto_classes(tmp_path, offline_cache):
    """What `push_adapter_to_hub` uploads (`stage_adapter`), in the Hub client's cache layout: transformers'
    Auto classes and pipeline take the repo id, read the backbones the adapter records, and answer as
    `VLModel.from_adapter` does."""
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor, pipeline

    from ademvl.processing import VLProcessor
    from tiny_adapter import save_tiny_adapter

    adapter = save_tiny_adapter(tmp_path)
    reference = VLModel.from_adapter(adapter)
    repo = hub_cache_with(stage_adapter(reference, tmp_path / "staged"), offline_cache, repo="someone/auto-ademvl")

    model = AutoModelForImageTextToText.from_pretrained(repo)
    processor = AutoProcessor.from_pretrained(repo)
    assert type(model) is VLModel and isinstance(processor, VLProcessor)
    inputs = processor(images=[Image.new("RGB", (32, 32), (0, 90, 200))], text=["what colour is the shape?"])
    with torch.no_grad():
        assert (model(**inputs).logits - reference(**inputs).logits).abs().max().item() <= 1e-6
    pipe = pipeline("image-text-to-text", model=repo)
    assert type(pipe.model) is VLModel and isinstance(pipe.processor, VLProcessor)
