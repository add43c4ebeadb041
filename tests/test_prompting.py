"""Input-stage fusion: "[bos] Image: <cls>" / "[bos] Image: N/A", loss on the answer only."""
import pytest
import torch

from ademvl.collate import VLCollator
from ademvl.data.example import VLExample
from ademvl.data.images import ImageError
from ademvl.prompting import IGNORE_INDEX, encode_sample
from tiny import tiny_image_processor, tiny_llm, tiny_tokenizer, tiny_vision, write_image


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def test_image_sample_layout(tok):
    e = encode_sample(tok, "Question: what colour?\nAnswer:", "red", True, num_visual_tokens=1)
    text = tok.decode(e.input_ids)
    assert e.input_ids[0] == tok.bos_token_id
    assert text.startswith("<s>Image: <pad>\nQuestion: what colour?\nAnswer: red</s>")
    assert e.image_slot == 1 + len(tok("Image: ", add_special_tokens=False)["input_ids"])
    answer = [t for t, l in zip(e.input_ids, e.labels) if l != IGNORE_INDEX]
    assert tok.decode(answer) == " red</s>"
    assert all(l == IGNORE_INDEX for l in e.labels[: len(e.labels) - len(answer)])


def test_text_only_sample_layout(tok):
    e = encode_sample(tok, "Q?", "yes", False, num_visual_tokens=1)
    assert tok.decode(e.input_ids) == "<s>Image: N/A\nQ? yes</s>"
    assert e.image_slot == -1


def test_truncation_keeps_prefix_and_answer(tok):
    e = encode_sample(tok, "word " * 200, "red", True, 1, max_length=40)
    assert len(e.input_ids) == 40
    assert tok.decode([t for t, l in zip(e.input_ids, e.labels) if l != IGNORE_INDEX]) == " red</s>"
    assert tok.decode(e.input_ids[:4]).startswith("<s>Image:")


def test_collated_mixed_batch_trains_and_generates(tok, tmp_path):
    from ademvl.model import VLModel

    examples = [
        VLExample("a", "Question: what colour is the shape?\nAnswer:", "red", write_image(tmp_path / "a.png")),
        VLExample("b", "Question: is it a cat?\nAnswer:", "no", None),
    ]
    collate = VLCollator(tok, tiny_image_processor(), num_visual_tokens=1)
    batch = collate(examples)
    assert batch["pixel_values"].shape == (2, 3, 32, 32)
    assert batch["pixel_values"][1].abs().sum() == 0 and batch["has_image"].tolist() == [1, 0]
    assert batch["image_slot"][1] == -1 and batch["input_ids"][0, batch["image_slot"][0]] == tok.pad_token_id
    model = VLModel.from_backbones(tiny_llm("llama", vocab=len(tok)), tiny_vision(), scales=(16, 4))
    loss = model(**batch).loss
    assert torch.isfinite(loss)

    gen = VLCollator(tok, tiny_image_processor(), num_visual_tokens=1, for_generation=True)(examples)
    assert "labels" not in gen
    assert gen["attention_mask"][:, -1].tolist() == [1, 1]  # left-padded
    slot = gen["image_slot"][0]
    assert gen["input_ids"][0, slot] == tok.pad_token_id and gen["input_ids"][0, slot - 1] != tok.pad_token_id
    out = model.generate(**gen, max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=None)
    assert out.shape == (2, gen["input_ids"].shape[1] + 3)
    assert torch.equal(out[:, : gen["input_ids"].shape[1]], gen["input_ids"])


def test_corrupt_image_names_file_and_record(tok, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    collate = VLCollator(tok, tiny_image_processor(), num_visual_tokens=1)
    with pytest.raises(ImageError, match="bad.png") as info:
        collate([VLExample("rec-7", "Q", "A", str(bad))])
    assert "rec-7" in str(info.value)
