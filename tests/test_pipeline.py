"""transformers' own `pipeline("image-text-to-text")` on an adapter directory, in the plain and the chat
layout: chat messages give `AdemVLChat`'s answer, a plain question gives "question answer"."""
import pytest
from PIL import Image
from transformers import pipeline

from ademvl.integrations import AdemVLChat
from tiny_adapter import save_tiny_adapter

QUESTION = "what colour is the shape?"
NEW_TOKENS = 6


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    save_tiny_adapter(root, "plain")
    save_tiny_adapter(root, "chat", layout="chat")
    return root


def image():
    return Image.new("RGB", (40, 30), (200, 30, 30))


@pytest.mark.parametrize("layout", ["plain", "chat"])
def test_pipeline_answers_as_ademvl_chat(root, layout):
    pipe = pipeline("image-text-to-text", model=str(root / layout))
    chat = AdemVLChat.from_checkpoint(root / layout, device="cpu", max_new_tokens=NEW_TOKENS)
    answer = chat.answer(image(), QUESTION)
    assert answer  # the tiny model says something, so the comparisons below can fail

    messages = [{"role": "user", "content": [{"type": "image", "image": image()}, {"type": "text", "text": QUESTION}]}]
    reply = pipe(text=messages, max_new_tokens=NEW_TOKENS)[0]["generated_text"]
    assert reply[:-1] == messages and reply[-1]["role"] == "assistant"
    assert reply[-1]["content"].strip() == answer
    new = pipe(text=messages, max_new_tokens=NEW_TOKENS, return_full_text=False)[0]["generated_text"]
    assert new.strip() == answer

    text = pipe(images=image(), text=QUESTION, max_new_tokens=NEW_TOKENS)[0]["generated_text"]
    continuation = pipe(images=image(), text=QUESTION, max_new_tokens=NEW_TOKENS, return_full_text=False)
    assert continuation[0]["generated_text"].strip() == answer
    assert text == QUESTION + continuation[0]["generated_text"]
    if layout == "chat":  # the answer opens the assistant turn; the returned text puts a space before it
        assert text == f"{QUESTION} {answer}"


def test_pipeline_refuses_a_conversation_it_cannot_lay_out(root):
    pipe = pipeline("image-text-to-text", model=str(root / "plain"))
    two_images = [{"role": "user", "content": [{"type": "image", "image": image()}, {"type": "image", "image": image()},
                                               {"type": "text", "text": QUESTION}]}]
    with pytest.raises(ValueError, match="2 images: ademvl takes one image per prompt"):
        pipe(text=two_images, max_new_tokens=2)
    ends_with_assistant = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "red"}]
    with pytest.raises(Exception, match="must end with a user turn"):
        pipe(text=ends_with_assistant, max_new_tokens=2)
