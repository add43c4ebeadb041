"""`ademvl serve` against hostile and unlucky requests: it must answer each in milliseconds with a 4xx
(OpenAI's error body, one line), never a 500, keep its memory bounded, and keep serving.

One real server with --api-key; its memory is read from /proc (VmHWM: the peak RSS so far).
"""
import base64
import http.client
import json
import os
import time
import urllib.parse

import pytest

openai = pytest.importorskip("openai", reason="the official openai client is not installed: pip install 'ademvl[test]'")
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install 'ademvl[serve]'")
psutil = pytest.importorskip("psutil")

from ademvl.integrations import AdemVLChat  # noqa: E402
from hostile_images import sideways_photo, strip_png  # noqa: E402
from serve_helpers import running_server, templated_adapter  # noqa: E402

KEY = "s3cret-key"
TEMPLATE = "Question: {prompt}\nAnswer:"
MB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    adapter = templated_adapter(root, "run", TEMPLATE)
    chat = AdemVLChat.from_checkpoint(adapter, device="cpu", max_new_tokens=2)
    with running_server("--checkpoint", str(adapter), "--max-tokens", "2", "--api-key", KEY) as url:
        port = urllib.parse.urlparse(url).port
        pid = next(p.pid for p in psutil.process_iter(["cmdline"])
                   if "serve" in (p.info["cmdline"] or []) and str(port) in (p.info["cmdline"] or []))
        yield {"url": url, "port": port, "pid": pid, "chat": chat}


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def send(server, body: bytes | dict, key: str | None = KEY, path: str = "/v1/chat/completions",
         chunked: bool = False) -> tuple[int, dict, float]:
    """POST `body`; (status, JSON body, seconds until the answer)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    connection = http.client.HTTPConnection("127.0.0.1", server["port"], timeout=60)
    start = time.perf_counter()
    try:
        if chunked:
            pieces = (data[i:i + 256 * 1024] for i in range(0, len(data), 256 * 1024))
            connection.request("POST", path, body=pieces, headers=headers, encode_chunked=True)
        else:
            connection.request("POST", path, body=data, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        seconds = time.perf_counter() - start
        if response.getheader("Content-Type", "").startswith("text/event-stream"):
            return response.status, {"stream": payload.decode()}, seconds
        return response.status, json.loads(payload), seconds
    finally:
        connection.close()


def question(text="what shape?", **extra) -> dict:
    return {"model": "run", "max_tokens": 1, "messages": [{"role": "user", "content": text}], **extra}


def refused(answer, status: int, *needles) -> dict:
    got, body, _ = answer
    assert got == status, body
    error = body["error"]
    assert "\n" not in error["message"]
    for needle in needles:
        assert needle in error["message"], error
    return error


def still_serving(server) -> None:
    status, body, _ = send(server, question())
    assert status == 200 and body["choices"][0]["message"]["content"] == server["chat"].answer(None, "what shape?",
                                                                                              max_new_tokens=1)


# --- 1. one request cannot starve the server ------------------------------------------------------

@pytest.mark.parametrize("chunked", [False, True])
def test_a_20mb_message_is_refused_at_once_with_bounded_memory(server, chunked):
    body = json.dumps(question("ab " * 7_000_000)).encode()  # 21 MB; tokenizing it whole took 34 s and 4.6 GB
    before = peak_rss_mb(server["pid"])
    status, answer, seconds = send(server, body, chunked=chunked)
    growth = peak_rss_mb(server["pid"]) - before
    refused((status, answer, seconds), 413, "request body too large", "--max-body-mb")
    assert seconds < 1.0 and growth < 100, (seconds, growth)
    still_serving(server)


def test_a_long_message_under_the_body_limit_is_refused_without_tokenizing_it(server):
    before = peak_rss_mb(server["pid"])
    answer = send(server, question("ab " * 1_000_000))  # 3 MB: passes the body limit, not the context
    growth = peak_rss_mb(server["pid"]) - before
    refused(answer, 400, "context is 128 tokens", "3000018 characters")
    assert answer[2] < 1.0 and growth < 100, (answer[2], growth)
    assert answer[1]["error"]["param"] == "messages"
    still_serving(server)


def test_the_api_key_is_required(server):
    refused(send(server, question(), key=None), 401, "API key")
    refused(send(server, question(), key="wrong"), 401, "API key")
    url = server["url"]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).chat.completions.create(
            model="run", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=60)
    reply = client.chat.completions.create(model="run", max_tokens=1, messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == server["chat"].answer(None, "hi", max_new_tokens=1)
    connection = http.client.HTTPConnection("127.0.0.1", server["port"], timeout=30)
    for path, status in (("/health", 200), ("/", 200), ("/info", 401), ("/v1/models", 401)):
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        assert response.status == status, path
    connection.close()


# --- 4. no request gets a 500 -----------------------------------------------------------------------

def test_a_lone_surrogate_and_a_tiny_temperature(server):
    body = json.dumps(question("a\ud800b")).encode()  # json.dumps writes it as the escape \ud800
    error = refused(send(server, body), 400, "lone surrogate", "U+D800")
    assert error["param"] == "messages.0.content"
    status, answer, _ = send(server, question(temperature=1e-300))  # greedy, its limit: not inf/NaN logits
    assert status == 200 and answer["choices"][0]["message"]["content"] == server["chat"].answer(
        None, "what shape?", max_new_tokens=1)


EXTREMES = {
    "model": ["", "x" * 100_000, "a\ud800b", 5, None, [], {}],
    "messages": [[], [{}] * 3, [{"role": "user", "content": "q"}] * 5000, "hi", None, 7,
                 [{"role": "user", "content": ""}], [{"role": "user", "content": []}],
                 [{"role": "user", "content": None}], [{"role": "user", "content": 5}],
                 [{"role": "user", "content": [{"type": "text"}]}],
                 [{"role": "user", "content": [{"type": "text", "text": 5}]}],
                 [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": ""}},
                                               {"type": "text", "text": "q"}]}],
                 [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:"}},
                                               {"type": "text", "text": "q"}]}],
                 [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,"}},
                                               {"type": "text", "text": "q"}]}],
                 [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:;base64,\ud800"}},
                                               {"type": "text", "text": "q"}]}],
                 [{"role": "system", "content": "s"}, {"role": "user", "content": "q\x00\x01"}],
                 [{"role": "user", "content": "q", "name": "n" * 10_000}],
                 [{"role": "assistant", "content": "a"}, {"role": "user", "content": "\ud800"}]],
    "max_tokens": [0, -1, 1, 2**31, 2**63, 10**100, 1.5, "5", True, None, [], -(10**100)],
    "max_completion_tokens": [0, 1, 2**63, 10**100, 1.5, "x", None],
    "temperature": [1e-300, 5e-324, 0, -0.0, 1e-3, 2, 2.0000001, 1e308, -1e-300, "hot", True, None, [1]],
    "top_p": [1e-300, 5e-324, 0, 1, 1.0000001, -1, "x", None],
    "stop": ["", [], [""], ["x"] * 16, ["x"] * 17, "x" * 1000, "x" * 100_000, [1], "\ud800", None, {"a": 1}],
    "stream": ["yes", 1, 2, None, [], True],
    "stream_options": [{}, {"include_usage": "x"}, {"include_usage": True}, [], 5, None],
    "n": [0, 1, 2, -1, 10**100, None, "1"],
}
Q = b'"messages": [{"role": "user", "content": "q"}]'
NON_STANDARD_JSON = [b'{"model": "run", "max_tokens": 1, "temperature": NaN, ' + Q + b'}',
                     b'{"model": "run", "max_tokens": 1, "top_p": Infinity, ' + Q + b'}',
                     b'{"model": "run", "max_tokens": -Infinity, "messages": [{"role": "user", "content": "q"}]}',
                     b'{"model": "run", "messages": [{"role": "user", "content": "q"}]' + b"]" * 100_000,
                     b"[" * 100_000, b"\xff\xfe", b"", b"null", b"[]", b'"x"']


def test_no_field_value_gets_a_500(server):
    """Every schema field set to extreme values, one at a time: 200 or a 4xx with OpenAI's error body."""
    bodies = [json.dumps({**question(), key: value}).encode() for key, values in EXTREMES.items() for value in values]
    bodies += NON_STANDARD_JSON
    statuses = set()
    for body in bodies:
        status, answer, _ = send(server, body)
        statuses.add(status)
        assert status == 200 or (400 <= status < 500 and "\n" not in answer["error"]["message"]), (body[:200], answer)
        if status == 200:
            assert answer.get("object") == "chat.completion" or answer["stream"].endswith("data: [DONE]\n\n"), answer
    assert {200, 400, 404} <= statuses, statuses
    still_serving(server)


# --- 2, 4, 5. images --------------------------------------------------------------------------------

def image_question(data: bytes, mime="image/png") -> dict:
    url = f"data:{mime};base64," + base64.b64encode(data).decode()
    return {"model": "run", "max_tokens": 2, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "what shape?"}]}]}


def test_a_sideways_photo_is_answered_upright(server):
    data, upright = sideways_photo()
    status, answer, _ = send(server, image_question(data, "image/jpeg"))
    assert status == 200
    assert answer["choices"][0]["message"]["content"] == server["chat"].answer(upright, "what shape?")


def test_a_one_pixel_wide_strip_is_a_400_not_a_memory_error(server):
    before = peak_rss_mb(server["pid"])
    error = refused(send(server, image_question(strip_png())), 400, "1x16000000", "too elongated")
    assert error["param"] == "messages.0.content.0.image_url"
    assert peak_rss_mb(server["pid"]) - before < 100
    still_serving(server)


def test_an_unreadable_image_is_named_without_pythons_object_repr(server):
    error = refused(send(server, image_question(b"not an image at all")), 400, "corrupt or unsupported image")
    assert "BytesIO" not in error["message"] and "0x" not in error["message"], error
