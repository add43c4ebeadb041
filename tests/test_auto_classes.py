"""transformers' Auto classes know ademvl: a saved model and processor come back through
AutoConfig / AutoModel / AutoProcessor and answer as the original does."""
import pytest
import torch
from PIL import Image

import ademvl.model  # noqa: F401  (registers the Auto classes)
from ademvl.processing import VLProcessor
from tiny import tiny_image_processor, tiny_llm, tiny_tokenizer, tiny_vision
from tiny_methods import liven


@pytest.mark.parametrize("method", ["ademvl", "lavin"])
def test_auto_round_trip_generates_the_same(method, tmp_path):
    from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

    from ademvl.model import VLModel

    tok = tiny_tokenizer()
    settings = {"scales": (16, 4)} if method == "ademvl" else {"neck_every": 1}
    model = liven(VLModel.from_backbones(tiny_llm("llama", 0, vocab=len(tok)), tiny_vision("clip", 1), method=method,
                                         **settings)).eval()
    model.config.prompt_template = "Question: {prompt}\nAnswer:"
    processor = VLProcessor.for_model(model, tok, tiny_image_processor(32))
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")

    assert AutoConfig.from_pretrained(tmp_path / "model").model_type == "ademvl"
    loaded = AutoModel.from_pretrained(tmp_path / "model").eval()
    assert type(loaded) is VLModel and type(AutoModelForImageTextToText.from_pretrained(tmp_path / "model")) is VLModel
    loaded_processor = AutoProcessor.from_pretrained(tmp_path / "model")
    assert isinstance(loaded_processor, VLProcessor)
    assert loaded_processor.prompt_template == "Question: {prompt}\nAnswer:"
    assert loaded_processor.num_prefix_tokens == model.method.num_prefix_tokens

    images = [Image.new("RGB", (40, 30), (200, 30, 30)), None]
    inputs = loaded_processor(images=images, text=["what colour is the shape?", "Which is a mammal?"])
    assert inputs["has_image"].tolist() == [1, 0]
    assert torch.equal(inputs["input_ids"], processor(images=images, text=["what colour is the shape?",
                                                                          "Which is a mammal?"])["input_ids"])
    gen = dict(max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=None)
    expected = model.generate(**inputs, **gen)
    assert torch.equal(loaded.generate(**inputs, **gen), expected)
    text = loaded_processor.batch_decode(expected[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert len(text) == 2 and all(isinstance(t, str) for t in text)


def test_processor_names_bad_input_in_one_line():
    processor = VLProcessor(tiny_image_processor(32), tiny_tokenizer(), num_visual_tokens=1)
    with pytest.raises(ValueError, match="2 images for 1 prompts") as info:
        processor(images=[None, None], text=["a"])
    assert "\n" not in str(info.value)
