"""The prompt contract (`ademvl.prompting`): a model records its `PromptSpec` at construction, and one
conversation gives token-identical prompts through every caller that lays conversations out
(transformers' `apply_chat_template` with the processor's chat template among them)."""
import base64
import copy
import io
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'ademvl[serve]'")

from ademvl.model import VLModel  # noqa: E402
from ademvl.evaluation import load_for_eval  # noqa: E402
from ademvl.evaluation.generation import GenerationCollator  # noqa: E402
from ademvl.integrations import AdemVLChat  # noqa: E402
from ademvl.integrations.lmms_eval_model import chat_messages_to_turns  # noqa: E402
from ademvl.integrations.vlmevalkit_model import messages_to_turns  # noqa: E402
from ademvl.processing import VLProcessor  # noqa: E402
from ademvl.prompting import PromptSpec, conversation_prompt, encode_for_model, prompt_spec_of  # noqa: E402
from ademvl.serve.requests import ServeSettings, prepare  # noqa: E402
from ademvl.serve.schema import ChatRequest  # noqa: E402
from tiny_eval import make_checkpoint  # noqa: E402

TEMPLATE = "Q: {prompt}\nA:"
# system, two user turns in a row, an assistant turn, a last question
TURNS = [("system", "Be brief."), ("user", "Look at this."), ("user", "What shape is it?"),
         ("assistant", "A circle."), ("user", "What colour?")]
EXPECTED = "Be brief.\nQ: Look at this.\nWhat shape is it?\nA: A circle.\nQ: What colour?\nA:"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("prompt_contract")
    adapter = make_checkpoint(root)
    _, tok, proc = load_for_eval(adapter, device="cpu")
    model = VLModel.from_adapter(adapter, prompt=PromptSpec(template=TEMPLATE))
    return SimpleNamespace(model=model, tok=tok, proc=proc, adapter=adapter, root=root)


def png_url(color=(255, 0, 0)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def ids_of(collator, example) -> list[int]:
    return collator([example])["input_ids"][0].tolist()


@pytest.mark.parametrize("with_image", [False, True])
def test_one_conversation_is_one_prompt_through_every_caller(setup, with_image):
    model, tok, proc = setup.model, setup.tok, setup.proc
    image = Image.new("RGB", (8, 8), (255, 0, 0)) if with_image else None
    chat = AdemVLChat(model, tok, proc)
    assert chat.prompt_template == TEMPLATE  # the template the model records
    assert conversation_prompt(TEMPLATE, TURNS) == chat.prompt(TURNS) == EXPECTED
    collator = GenerationCollator.for_model(model, tok, proc)

    # AdemVLChat (answer / answer_batch) and its scoring path (loglikelihood)
    via_chat = ids_of(collator, chat._example(image, TURNS))
    assert encode_for_model(model, tok, chat.prompt(TURNS), None, with_image).input_ids == via_chat

    # the serve request path: OpenAI messages → prepare → the worker's collator
    content = [{"type": "text", "text": "Look at this."}]
    if with_image:
        content = [{"type": "image_url", "image_url": {"url": png_url()}}, *content]
    messages = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": content},
                {"role": "user", "content": "What shape is it?"}, {"role": "assistant", "content": "A circle."},
                {"role": "user", "content": "What colour?"}]
    prepared = prepare(ChatRequest(model="ademvl", messages=messages), chat, ServeSettings(), context=4096)
    assert prepared.example.prompt == EXPECTED
    via_serve = ids_of(collator, prepared.example)
    assert via_serve == via_chat and prepared.prompt_tokens == len(via_chat)

    # the processor (transformers-style), given the conversation itself
    inputs = VLProcessor.for_model(model, tok, proc)(images=image, text=TURNS)
    assert inputs["input_ids"][0].tolist() == via_chat
    assert torch.equal(inputs["image_slot"], collator([chat._example(image, TURNS)])["image_slot"])

    # the processor's chat template (transformers' apply_chat_template, as pipeline calls it)
    processor = VLProcessor.for_model(model, tok, proc)
    hf_messages = hf_conversation(with_image)
    assert processor.apply_chat_template(hf_messages) == f"{tok.bos_token}Image: {'<image>' if with_image else 'N/A'}\n{EXPECTED}"
    rendered = processor.apply_chat_template(hf_messages, tokenize=True, return_dict=True)
    assert rendered["input_ids"][0].tolist() == via_chat
    assert torch.equal(rendered["image_slot"], inputs["image_slot"])

    # the harness adapters: VLMEvalKit's messages and lmms-eval's chat messages become the same turns
    vlmeval = [{"role": role, "content": [{"type": "text", "value": text}]} for role, text in TURNS]
    turns, _ = messages_to_turns(vlmeval)
    lmms = [SimpleNamespace(role=role, content=[SimpleNamespace(type="text", text=text)]) for role, text in TURNS]
    for harness_turns in (turns, chat_messages_to_turns(lmms)):
        assert ids_of(collator, chat._example(image, harness_turns)) == via_chat


def hf_conversation(with_image: bool) -> list[dict]:
    """TURNS as Hugging Face chat messages (the image, if any, with the first question)."""
    image = [{"type": "image", "image": Image.new("RGB", (8, 8), (255, 0, 0))}] if with_image else []
    messages = []
    for n, (role, text) in enumerate(TURNS):
        content = [*image, {"type": "text", "text": text}] if n == 1 else [{"type": "text", "text": text}]
        messages.append({"role": role, "content": content})
    return messages


@pytest.mark.parametrize("layout", ["plain", "chat"])
@pytest.mark.parametrize("with_image", [False, True])
def test_apply_chat_template_gives_the_prompt_builders_tokens(setup, layout, with_image):
    """`processor.apply_chat_template` renders the layout the model was trained in (the LLM's own chat
    template for "chat") and gives exactly `encode_for_model`'s tokens for the same conversation."""
    from tiny_adapter import CHAT_TEMPLATE

    tok = copy.deepcopy(setup.tok)
    tok.chat_template = CHAT_TEMPLATE
    model = VLModel.from_adapter(setup.adapter, prompt=PromptSpec(template=TEMPLATE, layout=layout))
    processor = VLProcessor.for_model(model, tok, setup.proc)
    expected = encode_for_model(model, tok, EXPECTED, None, with_image)
    rendered = processor.apply_chat_template(hf_conversation(with_image), tokenize=True, return_dict=True)
    assert rendered["input_ids"][0].tolist() == expected.input_ids
    assert rendered["image_slot"].tolist() == [expected.image_slot]
    assert rendered["has_image"].tolist() == [int(with_image)] and ("pixel_values" in rendered) == with_image
    text = processor.apply_chat_template(hf_conversation(with_image))
    if layout == "chat":  # the LLM's template around one user turn, the generation prompt after it
        head = "Image: <image>" if with_image else "Image: N/A"
        assert text == f"<s>user\n{head}\n{EXPECTED}</s>\n<s>assistant\n"


def test_the_prompt_spec_is_recorded_at_construction_and_saved(setup, tmp_path):
    spec = prompt_spec_of(setup.model)
    assert spec == PromptSpec(template=TEMPLATE, layout="plain", official=None)
    assert spec.encoding_layout == "plain"
    setup.model.save_adapter(tmp_path / "again")
    reloaded = VLModel.from_adapter(tmp_path / "again")  # the adapter JSON keeps its keys
    assert prompt_spec_of(reloaded) == spec
    assert PromptSpec(official="scienceqa").encoding_layout == "official"
    with pytest.raises(ValueError, match="prompt_layout must be one of plain, chat"):
        PromptSpec(layout="fancy")
    with pytest.raises(ValueError, match="must contain"):
        spec.question_template("no field")
