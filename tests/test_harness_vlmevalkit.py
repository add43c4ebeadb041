"""The VLMEvalKit adapter against VLMEvalKit's own `vlmeval.vlm.base.BaseModel`: `generate` and a
two-turn `chat` give what `AdemVLChat.answer` gives on the same inputs.

VLMEvalKit is not on PyPI and needs a torchvision that matches torch (PyPI's torchvision next to a
`+cpu` torch cannot be imported), so CI does not install it and these tests skip there; install it
from its repository (docs/harnesses.md) to run them."""
import os

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # vlmeval imports litellm, which would fetch a price list
try:
    from vlmeval.vlm.base import BaseModel
except Exception as error:  # ImportError, or torchvision's RuntimeError on a mismatched torch
    pytest.skip(f"VLMEvalKit cannot be imported here ({type(error).__name__}: {str(error).splitlines()[0]}); "
                "install it: git clone https://github.com/open-compass/VLMEvalKit && pip install -e VLMEvalKit",
                allow_module_level=True)

from ademvl.integrations import INSTRUCT_TEMPLATE, AdemVLChat  # noqa: E402
from ademvl.integrations.vlmevalkit_model import model_class, register  # noqa: E402
from tiny import write_image  # noqa: E402
from tiny_eval import make_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("vlmeval")
    adapter = make_checkpoint(root)
    chat = AdemVLChat.from_checkpoint(adapter, device="cpu", prompt_template=INSTRUCT_TEMPLATE)
    model = model_class()(checkpoint=str(adapter), device="cpu", max_new_tokens=6)
    return adapter, chat, model, write_image(root / "red.png"), write_image(root / "blue.png", (0, 0, 255))


def test_is_a_vlmevalkit_model(setup):
    _, _, model, _, _ = setup
    assert isinstance(model, BaseModel) and model.INTERLEAVE is False
    assert callable(model.chat) and model.chat.__func__ is BaseModel.chat  # not hidden by the wrapper
    assert model.use_custom_prompt("MME") is False


def test_generate_equals_the_chat_answer(setup):
    _, chat, model, red, blue = setup
    message = [{"type": "image", "value": red}, {"type": "text", "value": "What colour is the square?"}]
    expected = chat.answer(red, "What colour is the square?", max_new_tokens=6)
    assert model.generate(message, dataset="MME") == expected
    # two texts are joined by a newline; the first image is used
    two = [{"type": "image", "value": blue}, {"type": "text", "value": "Look."}, {"type": "text", "value": "Colour?"}]
    assert model.generate(two) == chat.answer(blue, "Look.\nColour?", max_new_tokens=6)
    assert model.generate("Text only?") == chat.answer(None, "Text only?", max_new_tokens=6)


def test_chat_over_two_turns(setup):
    _, chat, model, red, _ = setup
    messages = [{"role": "user", "content": [{"type": "image", "value": red},
                                             {"type": "text", "value": "What is shown?"}]},
                {"role": "assistant", "content": "A square."},
                {"role": "user", "content": "Which colour is it?"}]
    answer = model.chat(messages, dataset="MMDU")
    turns = [("user", "What is shown?"), ("assistant", "A square."), ("user", "Which colour is it?")]
    assert answer == chat.answer(red, turns, max_new_tokens=6)
    assert not answer.startswith("Chat Mode: Failed")
    # the second turn sees the first: the answer is not the one-turn answer to the last question
    bare = AdemVLChat(chat.model, chat.tokenizer, chat.image_processor, prompt_template="{prompt}")
    assert bare.answer(red, "Instruction: What is shown?\nResponse: A square.\nInstruction: Which colour is it?"
                       "\nResponse:", max_new_tokens=6) == answer


def test_register_and_bad_options(setup):
    adapter, chat, _, red, _ = setup
    from vlmeval.config import supported_VLM

    register(str(adapter), device="cpu", max_new_tokens=6)
    model = supported_VLM["ademvl"]()
    assert model.generate([{"type": "image", "value": red}, {"type": "text", "value": "Hi?"}]) == \
        chat.answer(red, "Hi?", max_new_tokens=6)
    with pytest.raises(ValueError, match="unknown ademvl model option 'max_new_token'"):
        model_class()(checkpoint=str(adapter), device="cpu", max_new_token=5)
