"""The shared harness wrapper, `AdemVLChat`: conversations laid out as LLaVA-instruct training lays
them out, unconditional scoring, quantization refused in one line where it cannot be honoured, and
the adapters' pure helpers (no harness needed)."""
import importlib
import sys
from types import SimpleNamespace

import pytest
import torch

from ademvl.data.llava_instruct import load_llava_instruct
from ademvl.evaluation import load_for_eval
from ademvl.integrations import INSTRUCT_TEMPLATE, AdemVLChat, conversation_prompt
from ademvl.integrations.lmms_eval_model import _resolve_device, harness_generation_kwargs, parse_batch_size
from ademvl.integrations.vlmevalkit_model import messages_to_turns
from tiny import write_image
from tiny_eval import make_checkpoint


@pytest.fixture(scope="module")
def chat(tmp_path_factory):
    root = tmp_path_factory.mktemp("harness_chat")
    adapter = make_checkpoint(root)
    model, tok, proc = load_for_eval(adapter, device="cpu")
    return SimpleNamespace(chat=AdemVLChat(model, tok, proc, max_new_tokens=4, prompt_template=INSTRUCT_TEMPLATE),
                           adapter=adapter, image=write_image(root / "red.png"), root=root)


def test_conversation_layout_is_the_training_layout(tmp_path):
    """A conversation's prompt is the prompt LLaVA-instruct training built for its last turn."""
    import json

    (tmp_path / "llava.json").write_text(json.dumps([{"id": "a", "image": "x.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "A square."},
        {"from": "human", "value": "Which colour?"}, {"from": "gpt", "value": "Red."}]}]))
    records = load_llava_instruct(tmp_path / "llava.json")
    turns = [("user", "What is it?"), ("assistant", "A square."), ("user", "Which colour?")]
    assert conversation_prompt(INSTRUCT_TEMPLATE, turns) == records[1].prompt
    assert conversation_prompt(INSTRUCT_TEMPLATE, turns[:1]) == records[0].prompt == \
        conversation_prompt(INSTRUCT_TEMPLATE, "What is it?")
    # system turns go first; consecutive user turns are joined
    assert conversation_prompt("Q: {prompt}\nA:", [("system", "Be brief."), ("user", "Hi"), ("user", "there")]) == \
        "Be brief.\nQ: Hi\nthere\nA:"


@pytest.mark.parametrize("turns, message", [
    ([("user", "a"), ("assistant", "b")], "must end with a user turn"),
    ([("assistant", "b"), ("user", "a")], "turn 0: an assistant turn must follow a user turn"),
    ([("robot", "a")], "turn 0: role must be one of system, user, assistant"),
    (["hello"], "turn 0 must be a \\(role, text\\) pair"),
])
def test_bad_conversations_are_refused_in_one_line(turns, message):
    with pytest.raises(ValueError, match=message):
        conversation_prompt(INSTRUCT_TEMPLATE, turns)


def test_conversation_answer_equals_the_answer_to_its_prompt(chat):
    c = chat.chat
    turns = [("user", "What is it?"), ("assistant", "A square."), ("user", "Which colour?")]
    bare = AdemVLChat(c.model, c.tokenizer, c.image_processor, max_new_tokens=4, prompt_template="{prompt}")
    assert c.answer(chat.image, turns) == bare.answer(chat.image, conversation_prompt(INSTRUCT_TEMPLATE, turns))
    assert c.answer_batch([chat.image, None], [turns, "Which colour?"]) == \
        [c.answer(chat.image, turns), c.answer(None, "Which colour?")]


def test_unconditional_loglikelihood_uses_the_prompt_as_given(chat):
    c = chat.chat
    bare = AdemVLChat(c.model, c.tokenizer, c.image_processor, prompt_template="{prompt}")
    assert c.loglikelihood(None, "", " red", template=False) == bare.loglikelihood(None, "", " red")
    assert c.loglikelihood(chat.image, "Colour?", " red", template=False) == \
        bare.loglikelihood(chat.image, "Colour?", " red")
    assert c.loglikelihood(chat.image, "Colour?", " red") == \
        bare.loglikelihood(chat.image, INSTRUCT_TEMPLATE.format(prompt="Colour?"), " red")


def test_unknown_quantization_fails_in_one_line(chat):
    with pytest.raises(ValueError, match="unknown quantization '3bit'; use 4bit or 8bit") as info:
        AdemVLChat.from_checkpoint(chat.adapter, device="cpu", quantization="3bit")
    assert "\n" not in str(info.value)


def test_quantized_chat_answers_on_the_cpu(chat):
    pytest.importorskip("bitsandbytes")
    from ademvl.quantized import quantization_of

    for quantization in ("4bit", "8bit"):
        c = AdemVLChat.from_checkpoint(chat.adapter, device="cpu", quantization=quantization)
        assert quantization_of(c.model.llm) == quantization
        assert isinstance(c.answer(chat.image, "Colour?", max_new_tokens=2), str)


def test_batch_size_and_generation_options():
    assert parse_batch_size(4) == (4, False) and parse_batch_size("2") == (2, False)
    assert parse_batch_size("auto") == (64, True) and parse_batch_size("auto:3", 16) == (16, True)
    for bad in ("0", "x", "1.5", -1):
        with pytest.raises(ValueError, match="batch_size must be a positive integer, 'auto' or 'auto:N'"):
            parse_batch_size(bad)
    greedy = harness_generation_kwargs({"max_new_tokens": 16, "temperature": 0, "top_p": 1.0, "until": ["\n"]}, 8)
    assert greedy == {"max_new_tokens": 16, "do_sample": False}
    assert harness_generation_kwargs({"temperature": 0.5, "top_p": 0.9}, 8) == \
        {"max_new_tokens": 8, "do_sample": True, "temperature": 0.5, "top_p": 0.9}


def test_one_device_per_process():
    two = SimpleNamespace(num_processes=2, local_process_index=1, device=torch.device("cuda:1"))
    assert _resolve_device("auto", two) == _resolve_device(None, two) == "cuda:1"
    assert _resolve_device("cuda", two) == "cuda:1"
    assert _resolve_device("cpu", two) == "cpu"
    one = SimpleNamespace(num_processes=1, local_process_index=0, device=torch.device("cpu"))
    assert _resolve_device(None, one) == "auto" and _resolve_device("cuda:0", one) == "cuda:0"


def test_vlmevalkit_messages_to_turns():
    messages = [{"role": "user", "content": [{"type": "image", "value": "a.png"}, {"type": "text", "value": "What?"}]},
                {"role": "assistant", "content": [{"type": "text", "value": "A cat."}]},
                {"role": "user", "content": [{"type": "image", "value": "b.png"}, {"type": "text", "value": "Colour?"}]}]
    assert messages_to_turns(messages) == ([("user", "What?"), ("assistant", "A cat."), ("user", "Colour?")], "a.png")
    with pytest.raises(ValueError, match="message 0: ademvl takes images and text, not 'video'"):
        messages_to_turns([{"role": "user", "content": [{"type": "video", "value": "v.mp4"}]}])


@pytest.mark.parametrize("module, hint", [("lmms_eval_model", "pip install lmms-eval"),
                                          ("vlmevalkit_model", "git clone https://github.com/open-compass/VLMEvalKit")])
def test_missing_harness_says_how_to_install_it(module, hint, monkeypatch):
    for name in ("lmms_eval", "lmms_eval.api", "lmms_eval.api.model", "vlmeval", "vlmeval.vlm", "vlmeval.vlm.base"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails even if installed
    mod = importlib.import_module(f"ademvl.integrations.{module}")
    if module == "lmms_eval_model":
        monkeypatch.setattr(mod, "_CLASSES", {})
    else:
        monkeypatch.setattr(mod, "_CLASS", None)
    with pytest.raises(ImportError, match=hint):
        mod.model_class()


def test_importing_the_integrations_is_light():
    """lmms-eval imports the entry-point module at every start-up: it must not pull in the model code."""
    import subprocess

    code = ("import sys, ademvl.integrations.lmms_eval_model as m; m.manifest; "
            "print(any(k.startswith(('ademvl.integrations.chat', 'transformers')) for k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
