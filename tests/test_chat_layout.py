"""prompt_layout "chat": the sample goes through the LLM's own chat template (instruct LLMs), the
loss covers exactly the assistant turn, and the setting travels with the adapter to generation."""
import pytest
import torch

from ademvl.prompting import IGNORE_INDEX, encode_sample
from tiny import tiny_tokenizer

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def chat_tokenizer():
    tok = tiny_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = CHATML
    return tok


def test_chat_layout_is_the_template_with_placeholders_and_the_answer_turn_labelled():
    tok = chat_tokenizer()
    enc = encode_sample(tok, "what colour is the shape?", "red", True, num_visual_tokens=3, num_prefix_tokens=1,
                        prompt_layout="chat")
    placeholder = tok.pad_token_id
    ids = enc.input_ids
    assert ids[0] == placeholder and enc.image_slot >= 1
    assert ids[enc.image_slot:enc.image_slot + 3] == [placeholder] * 3
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": "Image: \nwhat colour is the shape?"}, {"role": "assistant", "content": "red"}],
        tokenize=False)
    without_placeholders = ids[1:enc.image_slot] + ids[enc.image_slot + 3:]
    assert tok.decode(without_placeholders) == rendered.rstrip()
    answer = [t for t, label in zip(ids, enc.labels) if label != IGNORE_INDEX]
    assert tok.decode(answer) == "red<|im_end|>"  # the assistant turn and its end, nothing of the prompt
    prompt_only = encode_sample(tok, "what colour is the shape?", None, True, 3, num_prefix_tokens=1,
                                prompt_layout="chat")
    assert tok.decode(prompt_only.input_ids[enc.image_slot + 3:]).endswith("<|im_start|>assistant\n")
    assert prompt_only.input_ids == ids[:len(prompt_only.input_ids)]  # generation sees what training saw


def test_plain_layout_is_unchanged_and_chat_without_template_is_one_line():
    tok = tiny_tokenizer()
    plain = encode_sample(tok, "Q", "A", False, 1)
    assert tok.decode(plain.input_ids) == "<s>Image: N/A\nQ A</s>"
    with pytest.raises(ValueError, match="needs a tokenizer with a chat template") as info:
        encode_sample(tok, "Q", "A", False, 1, prompt_layout="chat")
    assert "\n" not in str(info.value)


def test_recipe_key_is_recorded_in_the_adapter_and_used_at_generation(tmp_path):
    from ademvl.collate import VLCollator
    from ademvl.data.example import VLExample
    from ademvl.model import VLModel
    from ademvl.training import load_recipe, train
    from tiny import tiny_image_processor, tiny_llm
    from train_tiny import write_recipe

    path = write_recipe(tmp_path)
    tok = chat_tokenizer()
    tiny_llm("llama", 0, vocab=len(tok)).save_pretrained(tmp_path / "llm")
    tok.save_pretrained(tmp_path / "llm")
    recipe = load_recipe(path, ["model.prompt_layout=chat", "data.limit=4", "train.batch_size=2", "train.epochs=1"])
    result = train(recipe, output_dir=tmp_path / "run", progress=False)
    model = VLModel.from_adapter(result.adapter_dir)
    assert model.config.prompt_layout == "chat"
    batch = VLCollator.for_model(model, tok, tiny_image_processor(32), for_generation=True)(
        [VLExample(id="0", prompt="what colour?", answer="", image=None)])
    assert "<|im_start|>assistant" in tok.decode(batch["input_ids"][0])
    with pytest.raises(Exception, match="prompt_layout"):
        load_recipe(path, ["model.prompt_layout=fancy"])
