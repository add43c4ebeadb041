"""The web chat page in a real browser: Debian's chromium driven by playwright.

Uploads an easy-VQA test image, asks about it, reads the streamed answer from
the page, continues the conversation, and checks both answers against the
model alone (`AdemVLChat` on the same tiny checkpoint).
"""
import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api",
                                 reason="playwright is not installed: pip install 'ademvl[test]'")
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install 'ademvl[serve]'")
easyvqa = pytest.importorskip("easy_vqa", reason="easy-vqa (the demo extra) is not installed")

from ademvl.data.easyvqa import easyvqa_data_dir  # noqa: E402
from ademvl.integrations import AdemVLChat  # noqa: E402
from serve_helpers import running_server, templated_adapter  # noqa: E402

TEMPLATE = "Question: {prompt}\nAnswer:"
MAX_TOKENS = 5


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("page")
    adapter = templated_adapter(root, "easyvqa", TEMPLATE)
    chat = AdemVLChat.from_checkpoint(adapter, device="cpu", max_new_tokens=MAX_TOKENS)
    with running_server("--checkpoint", str(adapter), "--max-tokens", str(MAX_TOKENS)) as url:
        yield url, chat, adapter


@pytest.fixture(scope="module")
def page(served):
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser.new_page()
        finally:
            browser.close()


def answer_on_page(page, question: str, turn: int) -> str:
    page.fill("#question", question)
    page.click("#send")
    done = page.locator(".msg.assistant[data-done='true'], .msg.error[data-done='true']").nth(turn)
    done.wait_for(timeout=60_000)
    assert "error" not in done.get_attribute("class"), done.text_content()
    return done.text_content()  # the exact characters (inner_text would normalise whitespace)


def test_the_page_answers_about_an_uploaded_image_and_continues(served, page):
    url, chat, adapter = served
    image = os.path.join(easyvqa_data_dir(), "test", "images", "0.png")
    page.goto(url)
    info = page.inner_text("#model-info")
    assert "method ademvl" in info and str(adapter) in info and "model easyvqa" in info
    page.set_input_files("#image", image)
    page.wait_for_selector("#preview img")

    first = answer_on_page(page, "what shape is in the image?", 0)
    assert first == chat.answer(image, "what shape is in the image?")

    second = answer_on_page(page, "what color is it?", 1)
    raw = AdemVLChat(chat.model, chat.tokenizer, chat.image_processor, max_new_tokens=MAX_TOKENS,
                     prompt_template="{prompt}")
    layout = f"Question: what shape is in the image?\nAnswer: {first}\nQuestion: what color is it?\nAnswer:"
    assert second == raw.answer(image, layout)
    assert page.locator(".msg.user").all_text_contents() == ["what shape is in the image?", "what color is it?"]


def test_the_page_shows_the_servers_error(served, page):
    """An oversized request is refused by the server; the page shows its message and keeps working."""
    page.goto(served[0])
    page.fill("#max-tokens", "100000")
    page.fill("#question", "what shape is in the image?")
    page.click("#send")
    error = page.locator(".msg.error[data-done='true']")
    error.wait_for(timeout=60_000)
    assert "context is 128 tokens" in error.inner_text()
