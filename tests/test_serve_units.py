"""The server's pieces without a server: conversation layout, per-row decoding, image checks."""
import base64
import io

import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'ademvl[serve]'")

from ademvl.serve.conversation import conversation_prompt  # noqa: E402
from ademvl.serve.errors import RequestError  # noqa: E402
from ademvl.serve.images import decode_image_url  # noqa: E402
from ademvl.serve.rows import Row  # noqa: E402
from ademvl.serve.schema import ChatRequest  # noqa: E402
from tiny import tiny_tokenizer  # noqa: E402

TEMPLATE = "Question: {prompt}\nAnswer:"


def messages(*items):
    return ChatRequest(model="m", messages=list(items)).messages


def png_url(size=(8, 8), color=(255, 0, 0)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_one_question_is_the_training_prompt():
    prompt, image = conversation_prompt(messages({"role": "user", "content": "what shape?"}), TEMPLATE)
    assert prompt == "Question: what shape?\nAnswer:" and image is None


def test_turns_are_laid_out_as_answered_questions():
    url = png_url()
    chat = messages(
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                     {"type": "text", "text": "what shape?"}]},
        {"role": "assistant", "content": "circle"},
        {"role": "user", "content": [{"type": "text", "text": "what colour?"}]},
    )
    prompt, image = conversation_prompt(chat, TEMPLATE)
    assert prompt == "Be brief.\nQuestion: what shape?\nAnswer: circle\nQuestion: what colour?\nAnswer:"
    assert image == (url, "messages.1.content.0.image_url")


@pytest.mark.parametrize("chat, needle", [
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "last message must come from the user"),
    ([{"role": "user", "content": "  "}], "no text to answer"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}},
                                   {"type": "image_url", "image_url": {"url": "data:,"}},
                                   {"type": "text", "text": "q"}]}], "one image per conversation, got 2"),
])
def test_conversations_that_cannot_be_laid_out(chat, needle):
    with pytest.raises(RequestError, match=needle):
        conversation_prompt(messages(*chat), TEMPLATE)


def test_image_urls():
    assert decode_image_url(png_url((5, 7))).size == (5, 7)
    cases = [
        ("http://example.com/a.png", "not fetched", {}),
        ("data:image/png;base64,@@@", "invalid base64", {}),
        ("data:image/png;base64," + base64.b64encode(b"not an image").decode(), "corrupt or unsupported image", {}),
        ("data:image/png," + "abc", "must be base64", {}),
        (png_url((64, 64)), "image too large: 64x64 pixels", {"max_pixels": 1000}),
        (png_url((64, 64)), "image too large: about", {"max_bytes": 10}),
    ]
    for url, needle, limits in cases:
        with pytest.raises(RequestError, match=needle) as caught:
            decode_image_url(url, param="messages.0.content.0.image_url", **limits)
        assert caught.value.param == "messages.0.content.0.image_url"
        assert caught.value.message.startswith("messages.0.content.0.image_url: ")


def feed(row: Row, tokenizer, text: str) -> list[str]:
    """Give `row` the tokens of `text` one at a time; the deltas it emitted."""
    for token in tokenizer(text, add_special_tokens=False)["input_ids"]:
        if row.step(token):
            break
    row.finish("length")
    return row.deltas


def make_row(tokenizer, max_tokens=50, stop=()):
    deltas = []
    row = Row(tokenizer, max_tokens, list(stop), tokenizer.eos_token_id,
              emit=lambda text, entries: deltas.append(text))
    row.deltas = deltas
    return row


def test_row_streams_deltas_that_add_up_to_the_stripped_answer():
    tok = tiny_tokenizer()
    row = make_row(tok)
    deltas = feed(row, tok, " The answer is A. ")
    assert "".join(deltas) == row.content == "The answer is A."
    assert len(deltas) > 3 and row.finish_reason == "length"


def test_row_cuts_at_a_stop_string_and_never_streams_a_part_of_it():
    tok = tiny_tokenizer()
    row = make_row(tok, stop=["is A", "zz"])
    deltas = feed(row, tok, " The answer is A. Context")
    assert row.content == "The answer" and "".join(deltas) == "The answer" and row.finish_reason == "stop"
    assert row.completion_tokens < len(tok(" The answer is A. Context", add_special_tokens=False)["input_ids"])


def test_row_budget_and_eos():
    tok = tiny_tokenizer()
    ids = tok(" The answer is A.", add_special_tokens=False)["input_ids"]
    row = make_row(tok, max_tokens=2)
    assert not row.step(ids[0]) and row.step(ids[1]) and row.finish_reason == "length"
    assert row.content == tok.decode(ids[:2]).strip() and row.completion_tokens == 2
    row = make_row(tok)
    assert not row.step(ids[0]) and row.step(tok.eos_token_id)
    assert row.finish_reason == "stop" and row.completion_tokens == 2 and row.content == tok.decode(ids[:1]).strip()


def test_worker_batches_answers_early_and_survives_a_failed_batch(tmp_path):
    """Real tiny model: a batch of a short and a long request; then a batch that cannot run, then one that can."""
    import threading

    from ademvl.data.example import VLExample
    from ademvl.integrations import AdemVLChat
    from ademvl.serve.worker import BatchWorker, Job
    from tiny import write_image
    from tiny_eval import make_checkpoint

    chat = AdemVLChat.from_checkpoint(make_checkpoint(tmp_path), device="cpu")
    image = Image.open(write_image(tmp_path / "red.png", (255, 0, 0)))
    events, finished = [], threading.Semaphore(0)

    def job(name, prompt, max_tokens, picture=image):
        def on_event(event):
            events.append((name, event))
            if event[0] in ("done", "error"):
                finished.release()
        return Job(example=VLExample(id=name, prompt=prompt, answer="", image=picture), max_tokens=max_tokens,
                   on_event=on_event)

    worker = BatchWorker(chat.model, chat.tokenizer, chat.image_processor, max_length=128, max_batch=4,
                         batch_wait=0.5)
    worker.submit(job("short", "Answer: red", 1))
    worker.submit(job("long", "The answer is", 8))
    worker.start()
    try:
        for _ in range(2):
            assert finished.acquire(timeout=60)
        worker.submit(job("broken", "Answer:", 4, picture=str(tmp_path / "missing.png")))
        assert finished.acquire(timeout=60)
        worker.submit(job("after", "Answer: red", 3))
        assert finished.acquire(timeout=60)
    finally:
        worker.stop()
    done = {name: event for name, event in events if event[0] in ("done", "error")}
    assert done["short"][3] == chat.answer(image, "Answer: red", max_new_tokens=1)
    assert done["long"][3] == chat.answer(image, "The answer is", max_new_tokens=8)
    assert done["after"][3] == chat.answer(image, "Answer: red", max_new_tokens=3)
    assert done["broken"][0] == "error" and "missing.png" in done["broken"][1]
    assert dict(worker.batch_sizes) == {2: 1, 1: 2}
    order = [name for name, event in events if event[0] == "done"]
    assert done["long"][2] > 1 and order.index("short") < order.index("long")  # answered before the batch ended


def one_line_error(capsys, argv, needle):
    from ademvl.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ademvl serve: error:") and needle in err, err


def test_cli_option_errors_are_one_line(capsys, tmp_path):
    import socket

    one_line_error(capsys, ["serve", "--max-batch", "0"], "--max-batch must be at least 1")
    one_line_error(capsys, ["serve", "--checkpoint", str(tmp_path / "none")], "checkpoint directory not found")
    one_line_error(capsys, ["serve", "--checkpoint", "runs/demo/ademvl/adapter", "--max-tokens", "0"], "--max-tokens")
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        one_line_error(capsys, ["serve", "--checkpoint", str(tmp_path), "--port", str(port)],
                       f"cannot listen on 127.0.0.1:{port}")


def test_images_are_upright_and_elongated_ones_refused():
    from hostile_images import sideways_photo, strip_png

    data, upright = sideways_photo()
    image = decode_image_url("data:image/jpeg;base64," + base64.b64encode(data).decode())
    assert image.size == (20, 60) == upright.size
    with pytest.raises(RequestError, match="1x16000000 is too elongated") as caught:
        decode_image_url("data:image/png;base64," + base64.b64encode(strip_png()).decode(), param="p")
    assert caught.value.param == "p"
    with pytest.raises(RequestError) as caught:
        decode_image_url("data:image/png;base64," + base64.b64encode(b"GIF89a but not").decode())
    assert "BytesIO" not in caught.value.message and "0x" not in caught.value.message


def test_prompt_length_is_checked_before_tokenizing_it_whole():
    from ademvl.serve.requests import check_prompt_length, max_token_chars

    tok = tiny_tokenizer()
    assert max_token_chars(tok) == max(len(t) for t in tok.get_vocab())
    calls = []
    counting = lambda text, **kw: calls.append(len(text)) or tok(text, **kw)  # noqa: E731
    with pytest.raises(RequestError, match="20000000 characters, which no tokenization fits"):
        check_prompt_length("ab " * 6_666_666 + "ab", counting, 128, 100)
    assert calls == []  # refused from its length alone
    with pytest.raises(RequestError, match=r"more than 128 tokens \(\d+ in their first 1024 characters\)"):
        check_prompt_length("word " * 1000, counting, 128, 100)
    assert calls == [1024]  # only the prefix was tokenized
    check_prompt_length("word " * 20, counting, 128, 100)  # fits: nothing refused


def test_a_public_address_without_an_api_key_warns_in_one_line(tmp_path, capsys, monkeypatch):
    import uvicorn

    from ademvl.cli import main
    from tiny_eval import make_checkpoint

    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(kw))
    adapter = make_checkpoint(tmp_path)
    assert main(["serve", "--checkpoint", str(adapter), "--host", "0.0.0.0", "--port", "0", "--device", "cpu"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "0.0.0.0 without --api-key" in warnings[0] and served[0]["host"] == "0.0.0.0"
    assert main(["serve", "--checkpoint", str(adapter), "--host", "0.0.0.0", "--port", "0", "--device", "cpu",
                 "--api-key", "k"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["serve", "--checkpoint", str(adapter), "--port", "0", "--device", "cpu"]) == 0
    assert "warning" not in capsys.readouterr().err  # 127.0.0.1, the default


def test_openai_penalties_subtract_counts_and_presence():
    from ademvl.serve.sampling import OpenAIPenalties

    scores = torch.zeros(1, 5)
    out = OpenAIPenalties(presence=0.5, frequency=0.25)(scores, [1, 3, 3, 3])
    assert out.tolist() == [[0.0, -0.75, 0.0, -1.25, 0.0]]
    assert OpenAIPenalties(0.5, 0.25)(scores, []) is scores  # nothing generated yet: nothing to penalise


def test_a_seeded_sampler_repeats_itself_and_leaves_the_global_rng_alone():
    from ademvl.serve.sampling import RowSampler, SamplingParams, request_generator

    tok = tiny_tokenizer()
    scores = torch.randn(1, len(tok))
    ids = torch.zeros(1, 1, dtype=torch.long)
    params = SamplingParams(temperature=1.0, seed=7, logprobs=True, top_logprobs=2)

    def picks(seed):
        sampler = RowSampler(SamplingParams(**{**params.__dict__, "seed": seed}), request_generator(seed), tok)
        return [sampler.pick(ids, scores) for _ in range(20)], sampler

    state = torch.get_rng_state()
    first, sampler = picks(7)
    assert torch.equal(torch.get_rng_state(), state)  # the request's own generator, not torch's
    assert picks(7)[0] == first and picks(8)[0] != first
    entry = sampler.take_entry()
    logprobs = torch.log_softmax(scores[0], -1)
    assert entry["logprob"] == pytest.approx(float(logprobs[first[-1]]), abs=1e-6)
    assert [t["logprob"] for t in entry["top_logprobs"]] == pytest.approx(logprobs.topk(2).values.tolist(), abs=1e-6)
    assert sampler.take_entry() is None  # taken once


def test_row_streams_logprob_entries_that_add_up_to_the_answers():
    tok = tiny_tokenizer()
    sent = []
    row = Row(tok, 50, ["is A"], tok.eos_token_id, emit=lambda text, entries: sent.append((text, entries)))
    ids = tok(" The answer is A. Context", add_special_tokens=False)["input_ids"]
    for k, token in enumerate(ids):
        if row.step(token, {"token": tok.decode([token]), "k": k}):
            break
    row.finish("length")
    assert row.content == "The answer" and "".join(text for text, _ in sent) == "The answer"
    streamed = [entry for _, entries in sent for entry in entries]
    assert streamed == row.logprobs  # a token that starts before the stop string is kept, later ones dropped
    kept = "".join(e["token"] for e in row.logprobs)
    assert kept.startswith(" The answer") and "A" not in kept and len(row.logprobs) < row.completion_tokens


def test_refused_and_unknown_parameters_are_named():
    from ademvl.serve.schema import ChatRequest, CompletionRequest

    base = {"model": "m", "messages": [{"role": "user", "content": "q"}]}
    assert ChatRequest(**base).refused_parameters() == []
    assert [name for name, _ in ChatRequest(**base, tool_choice="auto", tools=[{}], top_k=3).refused_parameters()] \
        == ["tools", "tool_choice", "top_k"]
    assert ChatRequest(**base, stream_options={"include_usage": True}).refused_parameters()[0][0] == "stream_options"
    assert CompletionRequest(model="m", prompt="p", best_of=1, suffix="").refused_parameters() == []
    assert CompletionRequest(model="m", prompt="p", best_of=2).refused_parameters()[0][0] == "best_of"


def test_a_participant_name_is_refused_not_dropped():
    with pytest.raises(RequestError, match="messages.0.name: this model's prompt layout has no place") as caught:
        conversation_prompt(messages({"role": "user", "content": "q", "name": "ann"}), TEMPLATE)
    assert caught.value.param == "messages.0.name"


def test_token_bytes_join_into_characters_split_over_tokens():
    from ademvl.serve.sampling import token_text

    tok = tiny_tokenizer()
    text = "naïve €5 ✓"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    pieces = [token_text(tok, i) for i in ids]
    assert any("\ufffd" in piece for piece, _ in pieces)  # some character is split over tokens
    assert bytes(b for _, raw in pieces for b in raw).decode("utf-8") == text
