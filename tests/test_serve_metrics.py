"""`ademvl serve`'s /metrics (Prometheus text format, read back with prometheus_client's own parser) and
its refusal of bodies that are not JSON. The counts must equal what the clients saw."""
import http.client
import json
import threading
import urllib.request

import pytest

openai = pytest.importorskip("openai", reason="the official openai client is not installed: pip install 'ademvl[test]'")
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install 'ademvl[serve]'")
parser = pytest.importorskip("prometheus_client.parser")

from serve_helpers import post, running_server, templated_adapter  # noqa: E402

CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    adapter = templated_adapter(tmp_path_factory.mktemp("metrics"), "run", "Question: {prompt}\nAnswer:")
    with running_server("--checkpoint", str(adapter), "--max-tokens", "3", "--batch-wait-ms", "300") as url:
        yield url


def samples(url: str) -> dict:
    """{(sample name, frozenset(labels)): value} of the server's /metrics."""
    with urllib.request.urlopen(f"{url}/metrics") as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in parser.text_string_to_metric_families(text) for s in family.samples}


def value(metrics: dict, name: str, **labels) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_requests_tokens_batches_and_latency(server):
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=120)
    before = samples(server)
    batches_before = json.loads(urllib.request.urlopen(f"{server}/info").read())["batches"]
    usages = []
    question = [{"role": "user", "content": "what shape?"}]
    usages.append(client.chat.completions.create(model="run", messages=question).usage)
    stream = client.chat.completions.create(model="run", messages=question, stream=True, n=2,
                                            stream_options={"include_usage": True})
    usages.append(list(stream)[-1].usage)
    barrier = threading.Barrier(4)

    def concurrent():
        barrier.wait()
        usages.append(client.chat.completions.create(model="run", messages=question, max_tokens=2).usage)

    threads = [threading.Thread(target=concurrent) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    completion = client.completions.create(model="run", prompt="The shape is", max_tokens=2).usage
    assert post(f"{server}{CHAT}", {"model": "run", "messages": question, "tools": []})[0] == 400

    after = samples(server)
    grew = lambda name, **labels: value(after, name, **labels) - value(before, name, **labels)  # noqa: E731
    assert grew("ademvl_requests_total", endpoint=CHAT, status="200") == 6
    assert grew("ademvl_requests_total", endpoint=CHAT, status="400") == 1
    assert grew("ademvl_requests_total", endpoint="/v1/completions", status="200") == 1
    assert grew("ademvl_completion_tokens_total", endpoint=CHAT) == sum(u.completion_tokens for u in usages)
    assert grew("ademvl_prompt_tokens_total", endpoint=CHAT) == sum(u.prompt_tokens for u in usages)
    assert grew("ademvl_completion_tokens_total", endpoint="/v1/completions") == completion.completion_tokens
    assert grew("ademvl_request_latency_seconds_count", endpoint=CHAT) == 7
    assert grew("ademvl_request_latency_seconds_sum", endpoint=CHAT) > 0
    batches = json.loads(urllib.request.urlopen(f"{server}/info").read())["batches"]
    new = {int(size): n - batches_before.get(size, 0) for size, n in batches.items()}
    assert grew("ademvl_batch_size_rows_count") == sum(new.values())
    assert grew("ademvl_batch_size_rows_sum") == sum(size * n for size, n in new.items()) == 1 + 2 + 4 + 1
    assert max(size for size, n in new.items() if n) > 2  # the four concurrent requests shared a batch
    assert value(after, "ademvl_queue_depth") == 0


def test_a_body_that_is_not_json_is_told_so(server):
    port = int(server.rsplit(":", 1)[1])
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/jsonx", None):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.putrequest("POST", CHAT)
        body = b'{"model": "run"}'
        if content_type:
            connection.putheader("Content-Type", content_type)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        error = json.loads(response.read())["error"]
        connection.close()
        assert response.status == 415, content_type
        assert "Content-Type must be application/json" in error["message"] and "\n" not in error["message"]
    status, body = post(f"{server}{CHAT}", {"model": "run", "max_tokens": 1,
                                             "messages": [{"role": "user", "content": "hi"}]},
                        content_type="application/json; charset=utf-8")
    assert status == 200, body
