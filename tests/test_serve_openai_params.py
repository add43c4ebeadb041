"""OpenAI's chat-completions parameters against a real `ademvl serve`, through the official `openai` client.

Each served parameter is checked against an independent reference computed in this
process from the same tiny checkpoint: log-probabilities against the model's own
forward on prompt + answer, penalties against a greedy loop over plain forwards with
OpenAI's formula, grammars by parsing the answer. Refused parameters must be a 400
naming them; none may be dropped silently.
"""
import json
import threading

import pytest
import torch
from PIL import Image

openai = pytest.importorskip("openai", reason="the official openai client is not installed: pip install 'ademvl[test]'")
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install 'ademvl[serve]'")

from ademvl.data.example import VLExample  # noqa: E402
from ademvl.evaluation.generation import GenerationCollator  # noqa: E402
from ademvl.integrations import AdemVLChat  # noqa: E402
from serve_helpers import data_url, post, running_server, templated_adapter  # noqa: E402
from tiny import write_image  # noqa: E402

TEMPLATE = "Question: {prompt}\nAnswer:"
QUESTION = "what colour is the shape?"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("params")
    adapter = templated_adapter(root, "run", TEMPLATE)
    image = write_image(root / "red.png", (255, 0, 0))
    chat = AdemVLChat.from_checkpoint(adapter, device="cpu", max_new_tokens=8)
    with running_server("--checkpoint", str(adapter), "--max-tokens", "8", "--batch-wait-ms", "300") as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)
        yield {"url": url, "client": client, "chat": chat, "image": image}


def ask(image) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(image)}},
                                         {"type": "text", "text": QUESTION}]}]


def prompt_batch(chat, image, prompt: str) -> dict:
    collator = GenerationCollator(chat.tokenizer, chat.image_processor, chat.model.method.num_input_tokens)
    return collator([VLExample(id="0", prompt=prompt, answer="", image=Image.open(image))])


@torch.no_grad()
def next_logits(chat, batch: dict, answer_ids: list[int]) -> torch.Tensor:
    """The model's logits for the token after prompt + `answer_ids`: one plain forward, no cache."""
    extra = torch.tensor([answer_ids], dtype=torch.long)
    inputs = {**batch, "input_ids": torch.cat([batch["input_ids"], extra], 1),
              "attention_mask": torch.cat([batch["attention_mask"], torch.ones_like(extra)], 1)}
    return chat.model(**inputs).logits[0, -1].float()


def greedy_with_penalties(chat, batch, steps: int, presence=0.0, frequency=0.0, bias=None) -> list[int]:
    """Greedy decoding over plain forwards with OpenAI's definitions written out:
    logit[j] + bias[j] - count[j] * frequency - (count[j] > 0) * presence."""
    ids: list[int] = []
    for _ in range(steps):
        logits = next_logits(chat, batch, ids)
        for token, value in (bias or {}).items():
            logits[token] += value
        for token in set(ids):
            logits[token] -= ids.count(token) * frequency + presence
        ids.append(int(logits.argmax()))
        if ids[-1] == chat.tokenizer.eos_token_id:
            break
    return ids


def test_logprobs_equal_the_models_own_forward_on_prompt_and_answer(setup):
    chat, image = setup["chat"], setup["image"]
    reply = setup["client"].chat.completions.create(model="run", messages=ask(image), max_tokens=6, logprobs=True,
                                                    top_logprobs=3)
    entries = reply.choices[0].logprobs.content
    assert reply.choices[0].message.content == chat.answer(image, QUESTION, max_new_tokens=6)
    batch = prompt_batch(chat, image, TEMPLATE.format(prompt=QUESTION))
    answer = greedy_with_penalties(chat, batch, 6)
    answer = [t for t in answer if t != chat.tokenizer.eos_token_id]
    assert len(entries) == len(answer) > 0
    for k, (entry, token) in enumerate(zip(entries, answer)):
        logprobs = torch.log_softmax(next_logits(chat, batch, answer[:k]), -1)
        assert entry.token == chat.tokenizer.decode([token])
        assert entry.bytes == list(entry.token.encode()) or "\ufffd" in entry.token  # part of a character
        assert abs(entry.logprob - float(logprobs[token])) < 1e-4
        top_values, top_ids = logprobs.topk(3)
        assert len(entry.top_logprobs) == 3
        for top, value, token_id in zip(entry.top_logprobs, top_values.tolist(), top_ids.tolist()):
            assert abs(top.logprob - value) < 1e-4 and top.token == chat.tokenizer.decode([token_id])
    # The tokens' bytes join into the answer's UTF-8, characters split over tokens included.
    joined = bytes(b for entry in entries for b in entry.bytes).decode("utf-8", "replace")
    assert joined.strip() == reply.choices[0].message.content
    # Streamed: the same entries, spread over the chunks.
    stream = setup["client"].chat.completions.create(model="run", messages=ask(image), max_tokens=6, logprobs=True,
                                                     top_logprobs=3, stream=True)
    streamed = [e for c in stream if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content or []]
    assert [(e.token, round(e.logprob, 5)) for e in streamed] == [(e.token, round(e.logprob, 5)) for e in entries]
    plain = setup["client"].chat.completions.create(model="run", messages=ask(image), max_tokens=2)
    assert plain.choices[0].logprobs is None


def test_a_seed_repeats_its_sample_whoever_shares_the_batch(setup):
    client, image = setup["client"], setup["image"]

    def sample(seed, **extra):
        return client.chat.completions.create(model="run", messages=ask(image), max_tokens=8, temperature=1.0,
                                              seed=seed, **extra).choices[0].message.content

    alone = [sample(7) for _ in range(3)]
    assert alone[0] == alone[1] == alone[2]
    others = {sample(seed) for seed in (8, 9, 10)}
    assert len(others | {alone[0]}) > 1  # a seed changes the sample
    # The same seed inside a batch of other sampled requests (the 300 ms window batches them).
    results = {}
    barrier = threading.Barrier(4)

    def in_batch(i):
        barrier.wait()
        results[i] = sample(7 if i == 0 else 100 + i, presence_penalty=0.5 if i == 2 else None)

    threads = [threading.Thread(target=in_batch, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results[0] == alone[0]


def test_n_choices_whole_and_streamed(setup):
    client, chat, image = setup["client"], setup["chat"], setup["image"]
    greedy = client.chat.completions.create(model="run", messages=ask(image), max_tokens=5, n=2)
    assert [c.index for c in greedy.choices] == [0, 1]
    assert {c.message.content for c in greedy.choices} == {chat.answer(image, QUESTION, max_new_tokens=5)}
    single = client.chat.completions.create(model="run", messages=ask(image), max_tokens=5)
    assert greedy.usage.completion_tokens == 2 * single.usage.completion_tokens
    assert greedy.usage.prompt_tokens == single.usage.prompt_tokens
    sampled = client.chat.completions.create(model="run", messages=ask(image), max_tokens=8, n=3, temperature=1.0,
                                             seed=3)
    texts = [c.message.content for c in sampled.choices]
    assert len(texts) == 3 and len(set(texts)) > 1  # three samples, not one copied
    stream = client.chat.completions.create(model="run", messages=ask(image), max_tokens=8, n=3, temperature=1.0,
                                            seed=3, stream=True, stream_options={"include_usage": True})
    joined, finished = {0: "", 1: "", 2: ""}, set()
    chunks = list(stream)
    for chunk in chunks:
        for choice in chunk.choices:
            joined[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finished.add(choice.index)
    assert [joined[i] for i in range(3)] == texts and finished == {0, 1, 2}
    assert chunks[-1].usage.completion_tokens == sampled.usage.completion_tokens


def test_presence_and_frequency_penalties_follow_openais_definition(setup):
    client, chat, image = setup["client"], setup["chat"], setup["image"]
    batch = prompt_batch(chat, image, TEMPLATE.format(prompt=QUESTION))
    favourite = int(next_logits(chat, batch, []).argsort()[-5])  # a token the bias makes the likeliest every step
    bias = {favourite: 1.5}
    repeated = client.chat.completions.create(model="run", messages=ask(image), max_tokens=6,
                                              logit_bias={str(favourite): 1.5})
    assert chat.tokenizer.decode(greedy_with_penalties(chat, batch, 6, bias=bias),
                                 skip_special_tokens=True).strip() == repeated.choices[0].message.content
    for presence, frequency in ((2.0, 0.0), (0.0, 1.2), (1.0, 0.4), (-1.0, 0.0)):
        reply = client.chat.completions.create(model="run", messages=ask(image), max_tokens=6, logit_bias={
            str(favourite): 1.5}, presence_penalty=presence, frequency_penalty=frequency)
        expected = greedy_with_penalties(chat, batch, 6, presence, frequency, bias)
        text = reply.choices[0].message.content
        assert text == chat.tokenizer.decode(expected, skip_special_tokens=True).strip(), (presence, frequency)
    strong = client.chat.completions.create(model="run", messages=ask(image), max_tokens=6,
                                            logit_bias={str(favourite): 1.5}, presence_penalty=2.0)
    assert strong.choices[0].message.content != repeated.choices[0].message.content


SCHEMA = {"type": "object", "properties": {"colour": {"type": "string", "enum": ["red", "blue", "green"]},
                                           "sure": {"type": "boolean"}},
          "required": ["colour", "sure"], "additionalProperties": False}


def test_response_format_json_schema_and_json_object(setup):
    client, image = setup["client"], setup["image"]
    reply = client.chat.completions.create(model="run", messages=ask(image), max_tokens=40, response_format={
        "type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True}})
    answer = json.loads(reply.choices[0].message.content)
    assert set(answer) == {"colour", "sure"} and answer["colour"] in SCHEMA["properties"]["colour"]["enum"]
    assert isinstance(answer["sure"], bool) and reply.choices[0].finish_reason == "stop"
    stream = client.chat.completions.create(model="run", messages=ask(image), max_tokens=40, stream=True,
                                            response_format={"type": "json_schema",
                                                             "json_schema": {"name": "answer", "schema": SCHEMA}})
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == reply.choices[0].message.content
    sampled = client.chat.completions.create(model="run", messages=ask(image), max_tokens=40, temperature=1.0,
                                             seed=5, n=3, response_format={
                                                 "type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA}})
    for choice in sampled.choices:
        assert set(json.loads(choice.message.content)) == {"colour", "sure"}
    from typing import Literal

    from pydantic import BaseModel

    class Answer(BaseModel):  # the openai client's structured outputs: a pydantic model as the schema
        colour: Literal["red", "blue", "green"]
        sure: bool

    parsed = client.chat.completions.parse(model="run", messages=ask(image), max_tokens=40, response_format=Answer)
    assert isinstance(parsed.choices[0].message.parsed, Answer)
    free = client.chat.completions.create(model="run", messages=ask(image), max_tokens=60,
                                          response_format={"type": "json_object"})
    text = free.choices[0].message.content
    assert text.startswith("{")
    if free.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(text), dict)
    plain = client.chat.completions.create(model="run", messages=ask(image), max_tokens=4,
                                           response_format={"type": "text"})
    assert plain.choices[0].message.content == setup["chat"].answer(image, QUESTION, max_new_tokens=4)
    with pytest.raises(openai.BadRequestError, match="response_format.json_schema.schema") as caught:
        client.chat.completions.create(model="run", messages=ask(image), response_format={
            "type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "no-such-type"}}})
    assert caught.value.body["param"] == "response_format.json_schema.schema"


TOOLS = [{"type": "function", "function": {"name": "colour", "parameters": {"type": "object", "properties": {}}}}]


@pytest.mark.parametrize("extra, param", [
    ({"tools": TOOLS, "tool_choice": "required"}, "tools"),
    ({"tools": TOOLS}, "tools"),
    ({"tool_choice": "none"}, "tool_choice"),
    ({"reasoning_effort": "low"}, "reasoning_effort"),
    ({"audio": {"voice": "alloy", "format": "wav"}, "modalities": ["text", "audio"]}, "audio"),
    ({"modalities": ["text", "audio"]}, "modalities"),
    ({"store": True}, "store"),
    ({"metadata": {"a": "b"}}, "metadata"),
    ({"service_tier": "flex"}, "service_tier"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"logit_bias": {"99999": 5}}, "logit_bias"),
    ({"extra_body": {"top_k": 5}}, "top_k"),
])
def test_what_is_not_served_is_a_400_naming_it(setup, extra, param):
    with pytest.raises(openai.BadRequestError) as caught:
        setup["client"].chat.completions.create(model="run", messages=ask(setup["image"]), max_tokens=2, **extra)
    assert caught.value.status_code == 400 and caught.value.body["param"] == param
    assert param in caught.value.body["message"]


def test_parameters_that_change_nothing_by_openais_definition_are_accepted(setup):
    client, chat, image = setup["client"], setup["chat"], setup["image"]
    reply = client.chat.completions.create(model="run", messages=ask(image), max_tokens=3, user="u1",
                                           safety_identifier="s", prompt_cache_key="k", store=False,
                                           service_tier="auto", modalities=["text"])
    assert reply.choices[0].message.content == chat.answer(image, QUESTION, max_new_tokens=3)


def test_completions_continue_a_plain_prompt_with_an_optional_image(setup):
    client, chat, image = setup["client"], setup["chat"], setup["image"]
    raw = AdemVLChat(chat.model, chat.tokenizer, chat.image_processor, max_new_tokens=5, prompt_template="{prompt}")
    reply = client.completions.create(model="run", prompt="The shape is", max_tokens=5,
                                      extra_body={"image_url": {"url": data_url(image)}})
    assert reply.object == "text_completion" and reply.choices[0].text == raw.answer(image, "The shape is")
    text_only = client.completions.create(model="run", prompt="The shape is", max_tokens=5)
    assert text_only.choices[0].text == raw.answer(None, "The shape is")
    with_logprobs = client.completions.create(model="run", prompt="The shape is", max_tokens=5, logprobs=2)
    logprobs = with_logprobs.choices[0].logprobs
    assert len(logprobs.tokens) == len(logprobs.token_logprobs) == len(logprobs.top_logprobs) >= 1
    assert all(len(top) <= 2 and max(top.values()) >= lp - 1e-6
               for top, lp in zip(logprobs.top_logprobs, logprobs.token_logprobs))
    stream = client.completions.create(model="run", prompt="The shape is", max_tokens=5, stream=True,
                                       extra_body={"image_url": {"url": data_url(image)}})
    assert "".join(c.choices[0].text for c in stream if c.choices) == reply.choices[0].text
    seeded = [client.completions.create(model="run", prompt="The shape is", max_tokens=6, temperature=1, seed=11, n=2)
              for _ in range(2)]
    assert [c.text for c in seeded[0].choices] == [c.text for c in seeded[1].choices]
    with pytest.raises(openai.BadRequestError, match="echo"):
        client.completions.create(model="run", prompt="The shape is", echo=True)
    status, body = post(f"{setup['url']}/v1/completions", {"model": "run", "prompt": [1, 2, 3]})
    assert status == 400 and body["error"]["param"].startswith("prompt")


NEW_EXTREMES = {
    "seed": [0, -1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**100, 1.5, "7", None],
    "logprobs": [True, False, None, "yes", 2],
    "top_logprobs": [0, 20, 21, -1, 10**100, None],
    "presence_penalty": [-2, 2, 2.0001, -3, 1e308, "x", None],
    "frequency_penalty": [-2, 2, 1e-300, float("1e308"), [], None],
    "logit_bias": [{}, {"0": 100}, {"0": 101}, {"-1": 1}, {"x": 1}, {"²": 1}, {"9" * 5000: 1}, {"1": "x"},
                   {str(i): 1 for i in range(1025)}, [], None],
    "n": [2, 8, 9, 16, 17, 0],
    "response_format": [{"type": "text"}, {"type": "json_object"}, {"type": "xml"}, {"type": "json_schema"},
                        {"type": "json_schema", "json_schema": {"name": "a"}},
                        {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "integer"}}},
                        {"type": "json_schema", "json_schema": {"name": "a", "schema": {"$ref": "#/nowhere"}}},
                        {"type": "json_schema", "json_schema": {"name": "a", "schema": {"a": "\ud800"}}},
                        {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object", "properties": {
                            f"p{i}": {"type": "string"} for i in range(3000)}}}},
                        "json", 5, None],
    "tools": [[], None, [{}], "x"],
    "stream_options": [{"include_usage": True}],
}


def test_no_new_parameter_value_gets_a_500(setup):
    """Each new parameter at extreme values: a 200 or a one-line 4xx naming it, never a 500."""
    url = f"{setup['url']}/v1/chat/completions"
    base = {"model": "run", "max_tokens": 2, "messages": [{"role": "user", "content": "q"}]}
    statuses = set()
    for key, values in NEW_EXTREMES.items():
        for value in values:
            status, body = post(url, {**base, key: value})
            statuses.add(status)
            assert status == 200 or (400 <= status < 500 and "\n" not in body["error"]["message"]), (key, value, body)
            if status == 400 and value is not None:
                assert body["error"]["param"].split(".")[0] == key, (key, value, body)
    status, body = post(f"{setup['url']}/v1/completions", {"model": "run", "prompt": "\ud800"})
    assert status == 400 and body["error"]["param"] == "prompt"
    assert {200, 400} <= statuses
