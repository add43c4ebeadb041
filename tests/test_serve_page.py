"""The web chat page in a real browser: Debian's chromium driven by playwright.

Uploads an easy-VQA test image, asks about it, reads the streamed answer from
the page, continues the conversation, and checks both answers against the
model alone (`AdemVLChat` on the same tiny checkpoint). The page must fit a
390 px phone and a 1280 px desktop, show a typing indicator until the first
token (the server waits `--batch-wait-ms` for company before generating, which
keeps every answer pending long enough to see it), and word failures for a
person: a non-image upload, a refused request, a server error, a lost connection.

    ADEMVL_PAGE_SCREENSHOTS=docs/images pytest tests/test_serve_page.py -k fits  # saves serve_page_{390,1280}.png
"""
import json
import os
import random
import shutil

import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api",
                                 reason="playwright is not installed: pip install 'ademvl[test]'")
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install 'ademvl[serve]'")
easyvqa = pytest.importorskip("easy_vqa", reason="easy-vqa (the demo extra) is not installed")

from ademvl.data.easyvqa import easyvqa_data_dir  # noqa: E402
from ademvl.integrations import AdemVLChat  # noqa: E402
from ademvl.serve.errors import error_body  # noqa: E402
from ademvl.serve.responses import Reply, generation_error, sse  # noqa: E402
from serve_helpers import running_server, templated_adapter  # noqa: E402

TEMPLATE = "Question: {prompt}\nAnswer:"
MAX_TOKENS = 5
BATCH_WAIT_MS = 500  # a lone request waits this long for company: the answer is pending at least this long
MAX_BODY_MB = 0.1  # the easy-VQA image (about 1 kB) passes; 200x200 pixels of noise (120 kB) get a 413
PHONE, DESKTOP = {"width": 390, "height": 844}, {"width": 1280, "height": 800}
DONE = ".msg.assistant[data-done='true'], .msg.error[data-done='true']"

# Every state of the newest assistant bubble, recorded by the page itself as it changes (playwright's
# polling could miss a state that lasts a few milliseconds).
RECORD_ANSWER = """() => {
  window.answerStates = [];
  const chat = document.getElementById("chat");
  new MutationObserver(() => {
    const all = chat.querySelectorAll(".msg.assistant, .msg.error");
    const last = all[all.length - 1];
    if (!last) return;
    const typing = last.querySelector(".typing");
    window.answerStates.push({typing: typing !== null && typing.getBoundingClientRect().width > 0,
                              text: typing ? "" : last.textContent, done: last.dataset.done});
  }).observe(chat, {childList: true, subtree: true, characterData: true, attributes: true});
}"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("page")
    adapter = templated_adapter(root, "easyvqa", TEMPLATE)
    chat = AdemVLChat.from_checkpoint(adapter, device="cpu", max_new_tokens=MAX_TOKENS)
    with running_server("--checkpoint", str(adapter), "--max-tokens", str(MAX_TOKENS),
                        "--max-batch", "2", "--batch-wait-ms", str(BATCH_WAIT_MS),
                        "--max-body-mb", str(MAX_BODY_MB)) as url:
        yield url, chat, adapter


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser):
    opened = browser.new_page(viewport=DESKTOP)
    try:
        yield opened
    finally:
        opened.close()


def image_path() -> str:
    return os.path.join(easyvqa_data_dir(), "test", "images", "0.png")


def upload(page, files) -> None:
    page.set_input_files("#image", files)
    page.wait_for_selector("#preview img, #preview:has-text('no preview')")


def ask(page, question: str):
    """Send `question`; the locator of its reply (assistant or error bubble), once done."""
    before = page.locator(DONE).count()
    page.fill("#question", question)
    page.click("#send")
    done = page.locator(DONE).nth(before)
    done.wait_for(timeout=60_000)
    return done


def answer_on_page(page, question: str) -> str:
    done = ask(page, question)
    assert "error" not in done.get_attribute("class"), done.text_content()
    return done.text_content()  # the exact characters (inner_text would normalise whitespace)


def inside_viewport(page, selector: str) -> None:
    box, view = page.locator(selector).bounding_box(), page.viewport_size
    assert box is not None, f"{selector} is not displayed"
    assert 0 <= box["x"] and box["x"] + box["width"] <= view["width"], (selector, box, view)
    assert 0 <= box["y"] and box["y"] + box["height"] <= view["height"], (selector, box, view)


def no_horizontal_scroll(page) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths[0]} px of content in {widths[1]} px"


def test_the_page_answers_about_an_uploaded_image_and_continues(served, page):
    url, chat, adapter = served
    page.goto(url)
    info = page.inner_text("#model-info")
    assert "method ademvl" in info and str(adapter) in info and "model easyvqa" in info
    upload(page, image_path())

    first = answer_on_page(page, "what shape is in the image?")
    assert first == chat.answer(image_path(), "what shape is in the image?")

    second = answer_on_page(page, "what color is it?")
    raw = AdemVLChat(chat.model, chat.tokenizer, chat.image_processor, max_new_tokens=MAX_TOKENS,
                     prompt_template="{prompt}")
    layout = f"Question: what shape is in the image?\nAnswer: {first}\nQuestion: what color is it?\nAnswer:"
    assert second == raw.answer(image_path(), layout)
    assert page.locator(".msg.user").all_text_contents() == ["what shape is in the image?", "what color is it?"]


def test_a_typing_indicator_shows_until_the_streamed_text_which_ends_as_the_answer(served, page):
    url, chat, _ = served
    page.goto(url)
    upload(page, image_path())
    page.evaluate(RECORD_ANSWER)
    page.fill("#question", "what shape is in the image?")
    page.click("#send")
    indicator = page.locator(".msg.assistant[data-done='false'] .typing")
    indicator.wait_for(state="visible", timeout=5_000)  # data-done='false': the answer is still pending
    assert page.locator("#send").is_disabled()
    done = page.locator(DONE).first
    done.wait_for(timeout=60_000)
    assert indicator.count() == 0 and not page.locator("#send").is_disabled()

    final = done.text_content()
    assert final == chat.answer(image_path(), "what shape is in the image?")
    states = page.evaluate("window.answerStates")
    assert states[0] == {"typing": True, "text": "", "done": "false"}, states
    shown = [state["text"] for state in states if not state["typing"]]
    assert shown and shown[-1] == final, states
    for earlier, later in zip(shown, shown[1:]):  # streamed text only grows, each state a prefix of the answer
        assert later.startswith(earlier), states
    first_text = next(i for i, state in enumerate(states) if state["text"])
    assert all(state["typing"] for state in states[:first_text]), states  # dots until the first token, not after
    assert not any(state["typing"] for state in states[first_text:]), states


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390px", "1280px"])
def test_the_page_fits_the_screen(served, browser, viewport):
    page = browser.new_page(viewport=viewport)
    try:
        page.goto(served[0])
        for selector in ("#question", "#send", "#chat", "#image"):
            inside_viewport(page, selector)
        no_horizontal_scroll(page)
        upload(page, image_path())
        page.fill("#question", "what shape is in the image?")
        page.click("#send")
        pending = ".msg.assistant[data-done='false'] .typing"
        page.locator(pending).wait_for(state="visible", timeout=5_000)
        inside_viewport(page, pending)
        folder = os.environ.get("ADEMVL_PAGE_SCREENSHOTS")
        if folder:  # the page while the model works: the image, the question, the typing indicator
            page.screenshot(path=os.path.join(folder, f"serve_page_{viewport['width']}.png"))
        page.locator(DONE).first.wait_for(timeout=60_000)
        ask(page, "and-what-colour-is-the-shape-drawn-in-the-middle-of-this-little-picture?")  # one long word
        for selector in ("#question", "#send", "#chat"):
            inside_viewport(page, selector)
        no_horizontal_scroll(page)
        for bubble in page.locator(".msg").all():
            box, chat = bubble.bounding_box(), page.locator("#chat").bounding_box()
            assert box["x"] >= chat["x"] and box["x"] + box["width"] <= chat["x"] + chat["width"], box
    finally:
        page.close()


def test_a_file_that_is_not_an_image_gets_a_sentence_not_a_python_error(served, page):
    page.goto(served[0])
    upload(page, {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"shopping: eggs, milk\n"})
    assert "no preview of notes.txt" in page.inner_text("#preview")
    error = ask(page, "what shape is in the image?")
    assert "error" in error.get_attribute("class")
    text = error.inner_text()
    assert text.startswith("That file is not an image we can read (PNG, JPEG"), text
    for leak in ("BytesIO", "0x", "messages.0", "image_url", "Error:"):
        assert leak not in text, text


def test_an_image_over_the_servers_limit_gets_a_sentence(served, page, tmp_path):
    noise = tmp_path / "noise.png"
    Image.frombytes("RGB", (200, 200), random.Random(0).randbytes(200 * 200 * 3)).save(noise)
    page.goto(served[0])
    upload(page, str(noise))
    error = ask(page, "what shape is in the image?")
    assert "error" in error.get_attribute("class")
    assert error.inner_text().startswith("That is too much to send to this server at once: choose a smaller image.")
    assert "--max-body-mb" in error.locator(".detail").inner_text()  # the server's own words, in small print


def test_the_page_shows_the_servers_error(served, page):
    """An oversized request is refused by the server; the page shows its message and keeps working."""
    page.goto(served[0])
    page.fill("#max-tokens", "100000")
    error = ask(page, "what shape is in the image?")
    assert "error" in error.get_attribute("class")
    assert "context is 128 tokens" in error.inner_text()
    assert error.inner_text()[0].isupper()
    page.fill("#max-tokens", str(MAX_TOKENS))
    assert "error" not in ask(page, "what shape is in the image?").get_attribute("class")


REPLY = Reply("easyvqa", 1)  # the server's own stream shapes
STARTED = REPLY.chunk({"role": "assistant", "content": ""}) + REPLY.chunk({"content": "a cir"})


FAILURES = [  # what the browser gets instead of the server's answer → the words the page must show
    ("abort", None, "Could not reach the server"),
    ({"status": 401, "content_type": "application/json",  # playwright dismisses the page's prompt for the key
      "body": json.dumps(error_body("missing or wrong API key", None, "invalid_api_key"))},
     None, "This server needs its API key"),
    ({"status": 500, "content_type": "application/json",
      "body": json.dumps(error_body("internal error: RuntimeError: boom", None, "internal_error", "server_error"))},
     None, "The server failed while answering (500"),
    ({"status": 502, "content_type": "text/html", "body": "<h1>Bad Gateway</h1>"},
     None, "The server failed while answering (502"),
    ({"status": 200, "content_type": "text/event-stream",
      "body": STARTED + sse(generation_error("generation failed: RuntimeError: boom"))},
     "a cir", "The model failed while answering"),
    ({"status": 200, "content_type": "text/event-stream", "body": STARTED},  # no finish, no [DONE]
     "a cir", "The connection to the server was lost"),
]


@pytest.mark.parametrize("answer,partial,words", FAILURES, ids=["unreachable", "401", "500", "502-html",
                                                                 "generation", "cut-stream"])
def test_failures_are_worded_for_a_person_and_the_page_recovers(served, page, answer, partial, words):
    """The browser's own network layer fails the request (playwright routes it); then the real server answers."""
    page.goto(served[0])
    page.route("**/v1/chat/completions", lambda route: route.abort() if answer == "abort" else route.fulfill(**answer))
    error = ask(page, "what shape is in the image?")
    if partial:  # what streamed before the failure stays, the error goes below it
        assert error.text_content() == partial
        error = page.locator(".msg.error[data-done='true']").first
        error.wait_for(timeout=10_000)
    assert "error" in error.get_attribute("class") and error.get_attribute("role") == "alert"
    assert error.inner_text().startswith(words), error.inner_text()
    assert page.locator(".typing").count() == 0
    page.unroute("**/v1/chat/completions")
    assert "error" not in ask(page, "what shape is in the image?").get_attribute("class")
