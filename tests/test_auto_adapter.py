"""An adapter directory (a few MB: the trainable weights) loads through transformers' Auto classes as a
peft adapter does: the model is rebuilt on the backbones the adapter records, and answers as
`VLModel.from_adapter` does; `import ademvl` alone is enough, in either import order."""
import json
import subprocess
import sys

import pytest
import torch
from PIL import Image
from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

from ademvl.checkpoint import CONFIG_NAME, WEIGHTS_NAME, AdapterError
from ademvl.config import VLConfig
from ademvl.model import VLModel
from ademvl.processing import VLProcessor
from tiny_adapter import TEMPLATE, save_tiny_adapter

QUESTIONS = ["what colour is the shape?", "Which is a mammal?"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("auto_adapter")
    save_tiny_adapter(root, "ademvl")
    save_tiny_adapter(root, "lavin", method="lavin", neck_every=1)  # a modality token before [bos]
    return root


def images():
    return [Image.new("RGB", (40, 30), (200, 30, 30)), None]


@pytest.mark.parametrize("name", ["ademvl", "lavin"])
def test_auto_classes_load_an_adapter_directory_as_from_adapter_does(root, name):
    adapter = root / name
    files = sorted(p.name for p in adapter.iterdir())
    assert files == sorted([CONFIG_NAME, WEIGHTS_NAME, "config.json", "processor_config.json"])
    reference = VLModel.from_adapter(adapter)
    trainable = sum(p.numel() * 4 for p in reference.trainable_parameters().values())
    assert sum((adapter / f).stat().st_size for f in files) < trainable + 64 * 1024  # no backbone weight

    config = AutoConfig.from_pretrained(adapter)
    assert type(config) is VLConfig and config.llm_name_or_path == str(root / "llm")
    model = AutoModelForImageTextToText.from_pretrained(adapter)
    assert type(model) is VLModel and type(AutoModel.from_pretrained(adapter)) is VLModel
    assert not model.training

    processor = AutoProcessor.from_pretrained(adapter)
    assert isinstance(processor, VLProcessor) and processor.prompt_template == TEMPLATE
    expected = VLProcessor.for_model(reference, processor.tokenizer, processor.image_processor)(
        images=images(), text=QUESTIONS)
    inputs = processor(images=images(), text=QUESTIONS)
    for key in ("input_ids", "attention_mask", "image_slot", "has_image"):
        assert torch.equal(inputs[key], expected[key]), key
    with torch.no_grad():
        got, want = model(**inputs).logits, reference(**inputs).logits
    assert (got - want).abs().max().item() <= 1e-6
    blank = VLModel.from_backbones(root / "llm", root / "vision", method=reference.config.method,
                                   method_config=reference.config.method_config).eval()
    with torch.no_grad():  # the adapter's weights matter: without them the logits differ
        assert (blank(**inputs).logits - want).abs().max().item() > 1e-3


def test_auto_options_and_bad_directories_are_one_line(root, tmp_path):
    model = AutoModelForImageTextToText.from_pretrained(root / "ademvl", dtype=torch.bfloat16, device_map="cpu")
    assert model.llm.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="takes dtype, device_map and the Hub options, not output_loading_info") as info:
        AutoModelForImageTextToText.from_pretrained(root / "ademvl", output_loading_info=True)
    assert "\n" not in str(info.value)

    moved = tmp_path / "moved"  # the backbones it records are gone
    moved.mkdir()
    for item in (root / "ademvl").iterdir():
        (moved / item.name).write_bytes(item.read_bytes())
    saved = json.loads((moved / CONFIG_NAME).read_text())
    saved["llm_name_or_path"] = str(tmp_path / "nowhere")
    (moved / CONFIG_NAME).write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="nowhere") as info:
        AutoModelForImageTextToText.from_pretrained(moved)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="nowhere") as info:
        AutoProcessor.from_pretrained(moved)
    assert "\n" not in str(info.value)

    (moved / "processor_config.json").unlink()
    with pytest.raises(AdapterError, match="no processor_config.json") as info:
        VLProcessor.from_pretrained(moved)
    assert "\n" not in str(info.value)
    (moved / WEIGHTS_NAME).write_bytes(b"not safetensors")
    saved["llm_name_or_path"] = str(root / "llm")
    (moved / CONFIG_NAME).write_text(json.dumps(saved))
    with pytest.raises(AdapterError, match="unreadable") as info:
        AutoModelForImageTextToText.from_pretrained(moved)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("first", ["ademvl", "transformers"])
def test_import_ademvl_is_enough_in_either_order(root, first):
    """A fresh interpreter: `import ademvl` pulls in no transformers, and the Auto classes and pipeline
    then know ademvl whichever was imported first."""
    imports = ["import ademvl", "from transformers import AutoModelForImageTextToText, AutoProcessor, pipeline"]
    if first == "ademvl":
        imports.insert(1, "assert 'transformers' not in sys.modules")
    code = "; ".join(["import sys", *(imports if first == "ademvl" else imports[::-1]),
                      f"p = AutoProcessor.from_pretrained({str(root / 'ademvl')!r})",
                      f"m = AutoModelForImageTextToText.from_pretrained({str(root / 'ademvl')!r})",
                      "print(type(p).__name__, type(m).__name__)"])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["VLProcessor", "VLModel"]


def test_a_whole_saved_chat_layout_processor_keeps_the_llms_own_template(root, tmp_path):
    """Saving a processor writes the tokenizer's chat template, not the layout's over it: loaded again,
    the tokenizer has the LLM's template and the processor the layout's, giving the same tokens."""
    from tiny_adapter import CHAT_TEMPLATE

    adapter = save_tiny_adapter(root, "chat", layout="chat")
    processor = AutoProcessor.from_pretrained(adapter)
    assert processor.tokenizer.chat_template == CHAT_TEMPLATE and processor.chat_template != CHAT_TEMPLATE
    processor.save_pretrained(tmp_path / "whole")
    again = AutoProcessor.from_pretrained(tmp_path / "whole")
    assert again.tokenizer.chat_template == CHAT_TEMPLATE and again.chat_template == processor.chat_template
    messages = [{"role": "user", "content": [{"type": "image", "image": images()[0]}, {"type": "text", "text": "hi"}]}]
    ids = [p.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"] for p in (processor, again)]
    assert torch.equal(*ids)
