"""`ademvl serve` as a real process, talked to by the official `openai` client and by raw HTTP.

Every answer is compared with `AdemVLChat` (one `model.generate` call) on the same
tiny checkpoint loaded in this process: the server must answer exactly what the
model answers alone, batched or not, streamed or not.
"""
import json
import random
import threading
import urllib.request

import pytest
from PIL import Image

openai = pytest.importorskip("openai", reason="the official openai client is not installed: pip install 'ademvl[test]'")
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install 'ademvl[serve]'")

from ademvl.integrations import AdemVLChat  # noqa: E402
from ademvl.prompting import encode_sample  # noqa: E402
from serve_helpers import data_url, png_data_url, post, running_server, templated_adapter  # noqa: E402
from tiny import write_image  # noqa: E402

TEMPLATE = "Question: {prompt}\nAnswer:"
MAX_TOKENS = 6
COLORS = [(255, 0, 0), (0, 0, 255), (0, 255, 0), (250, 250, 0), (0, 200, 200), (120, 40, 200), (30, 30, 30)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    adapter = templated_adapter(root, "run", TEMPLATE)
    images = [write_image(root / f"image{i}.png", color) for i, color in enumerate(COLORS)]
    chat = AdemVLChat.from_checkpoint(adapter, device="cpu", max_new_tokens=MAX_TOKENS)
    # A generous batch window makes the concurrent test's requests meet in one batch.
    with running_server("--checkpoint", str(adapter), "--max-tokens", str(MAX_TOKENS), "--batch-wait-ms", "300",
                        "--max-image-mb", "0.02") as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)
        yield {"url": url, "client": client, "chat": chat, "images": images, "adapter": adapter, "root": root}


def ask(question: str, image=None) -> dict:
    content = [{"type": "text", "text": question}]
    if image is not None:
        content.insert(0, {"type": "image_url", "image_url": {"url": data_url(image)}})
    return {"role": "user", "content": content}


def test_models_lists_the_adapter_by_its_run_name(setup):
    models = setup["client"].models.list()
    assert [m.id for m in models.data] == ["run"]
    info = json.loads(urllib.request.urlopen(f"{setup['url']}/info").read())
    assert info["method"] == "ademvl" and info["checkpoint"] == str(setup["adapter"])
    assert info["prompt_template"] == TEMPLATE and info["context_length"] == 128


def test_plain_answer_and_usage_equal_the_model_alone(setup):
    chat, image = setup["chat"], setup["images"][0]
    reply = setup["client"].chat.completions.create(model="run", messages=[ask("what colour is the shape?", image)])
    assert reply.choices[0].message.content == chat.answer(image, "what colour is the shape?")
    assert reply.choices[0].message.role == "assistant" and reply.model == "run"
    encoded = encode_sample(chat.tokenizer, TEMPLATE.format(prompt="what colour is the shape?"), None, True,
                            chat.model.method.num_input_tokens)
    tokens = reference_tokens(chat, image, TEMPLATE.format(prompt="what colour is the shape?"), MAX_TOKENS)
    assert reply.usage.prompt_tokens == len(encoded.input_ids)
    assert reply.usage.completion_tokens == len(tokens)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert reply.choices[0].finish_reason == ("stop" if tokens[-1] == chat.tokenizer.eos_token_id else "length")


def reference_tokens(chat, image, prompt: str, max_new_tokens: int) -> list[int]:
    """The new token ids `model.generate` makes alone, up to and with the first EOS."""
    from ademvl.data.example import VLExample
    from ademvl.evaluation.generation import GenerationCollator, generation_kwargs

    collator = GenerationCollator(chat.tokenizer, chat.image_processor, chat.model.method.num_input_tokens)
    batch = collator([VLExample(id="0", prompt=prompt, answer="", image=Image.open(image))])
    out = chat.model.generate(**batch, **generation_kwargs(chat.tokenizer, max_new_tokens))
    new = out[0, batch["input_ids"].shape[1]:].tolist()
    eos = chat.tokenizer.eos_token_id
    return new[:new.index(eos) + 1] if eos in new else new


def test_streaming_sends_the_same_answer_token_by_token(setup):
    chat, image = setup["chat"], setup["images"][1]
    stream = setup["client"].chat.completions.create(model="run", messages=[ask("what shape?", image)],
                                                     max_tokens=12, stream=True,
                                                     stream_options={"include_usage": True})
    chunks = list(stream)
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(deltas) == chat.answer(image, "what shape?", max_new_tokens=12)
    assert len(deltas) >= 3  # several tokens, several events
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0] in ("stop", "length")
    assert chunks[-1].usage is not None and 1 <= chunks[-1].usage.completion_tokens <= 12


def test_two_turns_lay_the_first_answer_out_before_the_second_question(setup):
    chat, image, client = setup["chat"], setup["images"][2], setup["client"]
    first = client.chat.completions.create(model="run", messages=[ask("what shape?", image)])
    answer = first.choices[0].message.content
    messages = [ask("what shape?", image), {"role": "assistant", "content": answer},
                {"role": "user", "content": "what colour?"}]
    second = client.chat.completions.create(model="run", messages=messages)
    raw = AdemVLChat(chat.model, chat.tokenizer, chat.image_processor, max_new_tokens=MAX_TOKENS,
                     prompt_template="{prompt}")
    layout = f"Question: what shape?\nAnswer: {answer}\nQuestion: what colour?\nAnswer:"
    assert second.choices[0].message.content == raw.answer(image, layout)
    streamed = "".join(c.choices[0].delta.content or "" for c in
                       client.chat.completions.create(model="run", messages=messages, stream=True))
    assert streamed == second.choices[0].message.content


def test_text_only_is_answered_as_the_model_allows(setup):
    reply = setup["client"].chat.completions.create(model="run", messages=[{"role": "user", "content": "hello"}])
    assert reply.choices[0].message.content == setup["chat"].answer(None, "hello")


def test_max_tokens_stop_and_sampling(setup):
    chat, image, client = setup["chat"], setup["images"][2], setup["client"]
    full = chat.answer(image, "what colour?", max_new_tokens=12)
    short = client.chat.completions.create(model="run", messages=[ask("what colour?", image)], max_tokens=2)
    assert short.choices[0].message.content == chat.answer(image, "what colour?", max_new_tokens=2)
    assert short.usage.completion_tokens == 2 and short.choices[0].finish_reason == "length"
    # A stop string from inside the answer (the tiny random model answers in odd characters).
    stop = next(full[k:k + 2] for k in range(2, len(full) - 1)
                if full[k:k + 2].isprintable() and full[k:k + 2].strip() and "\ufffd" not in full[k:k + 2])
    cut = client.chat.completions.create(model="run", messages=[ask("what colour?", image)], max_tokens=12, stop=[stop])
    assert cut.choices[0].message.content == full[:full.index(stop)].strip()
    assert cut.choices[0].finish_reason == "stop"
    # top_p this small keeps only the likeliest token: sampling must then equal greedy decoding.
    sampled = client.chat.completions.create(model="run", messages=[ask("what colour?", image)], max_tokens=12,
                                             temperature=0.7, top_p=1e-9)
    assert sampled.choices[0].message.content == full


def test_eight_concurrent_clients_get_the_answers_each_gets_alone(setup):
    chat, url = setup["chat"], setup["url"]
    jobs = [(f"what colour is shape {i}?", setup["images"][i % len(COLORS)] if i != 5 else None, 3 + i % 4)
            for i in range(8)]  # mixed lengths, one text-only row
    before = json.loads(urllib.request.urlopen(f"{url}/info").read())["batches"]
    results: dict[int, str] = {}
    barrier = threading.Barrier(len(jobs))

    def client_thread(i, question, image, max_tokens):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)
        barrier.wait()
        if i % 2:  # half of them stream
            stream = client.chat.completions.create(model="run", messages=[ask(question, image)],
                                                    max_tokens=max_tokens, stream=True)
            results[i] = "".join(c.choices[0].delta.content or "" for c in stream)
        else:
            reply = client.chat.completions.create(model="run", messages=[ask(question, image)], max_tokens=max_tokens)
            results[i] = reply.choices[0].message.content

    threads = [threading.Thread(target=client_thread, args=(i, *job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, (question, image, max_tokens) in enumerate(jobs):
        assert results[i] == chat.answer(image, question, max_new_tokens=max_tokens), i
    after = json.loads(urllib.request.urlopen(f"{url}/info").read())["batches"]
    new = {int(size): n - before.get(size, 0) for size, n in after.items() if n - before.get(size, 0)}
    assert sum(size * n for size, n in new.items()) == 8 and max(new) > 1, new  # they were batched


def error_of(status_and_body, status, param, *needles):
    got_status, body = status_and_body
    assert got_status == status, body
    error = body["error"]
    assert error["param"] == param, error
    assert "\n" not in error["message"]
    for needle in needles:
        assert needle in error["message"], error
    return error


def test_bad_input_gets_a_4xx_naming_the_problem_and_the_server_keeps_serving(setup):
    url, image, chat = setup["url"], setup["images"][4], setup["chat"]
    endpoint = f"{url}/v1/chat/completions"
    good = {"model": "run", "messages": [ask("what shape?", image)]}
    image_part = "messages.0.content.0.image_url"

    def with_image(data):
        return {"model": "run", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": data}}, {"type": "text", "text": "what shape?"}]}]}

    error_of(post(endpoint, b'{"model": "run", "messages": ['), 400, None, "malformed JSON")
    error_of(post(endpoint, {**good, "model": "gpt-4o"}), 404, "model", "'gpt-4o' not found", "'run'")
    error_of(post(endpoint, with_image("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA")), 400, image_part,
             "corrupt or unsupported image")
    error_of(post(endpoint, with_image("data:image/png;base64,not*base64")), 400, image_part, "invalid base64")
    noise = Image.frombytes("RGB", (120, 120), random.Random(0).randbytes(120 * 120 * 3))  # ~43 kB > 20 kB
    error_of(post(endpoint, with_image(png_data_url(noise))), 400, image_part, "image too large")
    error_of(post(endpoint, with_image("https://example.com/cat.png")), 400, image_part, "not fetched", "offline")
    error_of(post(endpoint, {**good, "max_tokens": 1000}), 400, "max_tokens", "context is 128 tokens")
    error_of(post(endpoint, {"model": "run", "messages": [{"role": "user", "content": "word " * 200}]}), 400,
             "messages", "context is 128 tokens")
    error_of(post(endpoint, {**good, "temperature": 5}), 400, "temperature", "less than or equal to 2")
    error_of(post(endpoint, {**good, "n": 17}), 400, "n")
    error_of(post(endpoint, {**good, "n": 9}), 400, "n", "at most 8 choices", "--max-batch")
    error_of(post(endpoint, {"model": "run", "messages": []}), 400, "messages")
    error_of(post(endpoint, {"model": "run", "messages": [{"role": "tool", "content": "x"}]}), 400,
             "messages.0.role")
    error_of(post(endpoint, {"model": "run"}), 400, "messages", "Field required")
    error_of(post(endpoint, {"model": "run", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
             400, "messages.0.content.0", "'input_audio'", "'text', 'image_url'")
    error_of(post(endpoint, {"model": "run", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"detail": "low"}}]}]}), 400, "messages.0.content.0.image_url.url",
        "Field required")
    with pytest.raises(openai.NotFoundError, match="not found"):
        setup["client"].chat.completions.create(model="other", messages=[ask("what shape?", image)])
    with pytest.raises(openai.BadRequestError, match="context is 128 tokens"):
        setup["client"].chat.completions.create(model="run", messages=[ask("what shape?", image)], max_tokens=500)
    status, body = post(endpoint, good)  # still serving, still right
    assert status == 200 and body["choices"][0]["message"]["content"] == chat.answer(image, "what shape?")


def test_an_adapter_that_needs_an_image_refuses_text_only(setup):
    with running_server("--checkpoint", str(setup["adapter"]), "--require-image", "--max-tokens", "3") as url:
        status, body = post(f"{url}/v1/chat/completions", {"model": "run", "messages": [ask("what shape?")]})
        error_of((status, body), 400, "messages", "answers questions about an image", "image_url part")
        status, body = post(f"{url}/v1/chat/completions",
                            {"model": "run", "messages": [ask("what shape?", setup["images"][0])]})
        assert status == 200
        assert body["choices"][0]["message"]["content"] == setup["chat"].answer(setup["images"][0], "what shape?",
                                                                               max_new_tokens=3)
