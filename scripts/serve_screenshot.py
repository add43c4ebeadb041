"""Screenshot of the `ademvl serve` web page for the README: a real server, Debian's chromium.

    python scripts/serve_screenshot.py            # the demo adapter → docs/images/serve_page.png
    python scripts/serve_screenshot.py --viewport 390x844 --out docs/images/serve_page_390.png   # a phone

Uploads an easy-VQA test image, asks two questions in one conversation, and
saves the page once the second answer has streamed in.
"""
from __future__ import annotations

import argparse
import os
import sys


def main(argv=None) -> int:
    from ademvl.data.easyvqa import easyvqa_data_dir
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    from child_process import running_server  # the server tests' helper: `ademvl serve` in a child process
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="runs/demo/ademvl/adapter")
    parser.add_argument("--image", default=os.path.join(easyvqa_data_dir(), "test", "images", "0.png"))
    parser.add_argument("--questions", nargs="+", default=["what shape is in the image?", "what color is the shape?"])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--out", default="docs/images/serve_page.png")
    parser.add_argument("--viewport", default="1000x560", help="WIDTHxHEIGHT in CSS pixels")
    args = parser.parse_args(argv)

    with running_server("--checkpoint", args.checkpoint, "--max-tokens", "8", threads=2) as url, \
            sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        width, height = (int(v) for v in args.viewport.lower().split("x"))
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(url)
        page.set_input_files("#image", args.image)
        page.wait_for_selector("#preview img")
        for turn, question in enumerate(args.questions):
            page.fill("#question", question)
            page.click("#send")
            page.locator(".msg[data-done='true']").nth(turn).wait_for(timeout=120_000)
            print(f"{question} -> {page.locator('.msg[data-done=true]').nth(turn).text_content()}")
        page.screenshot(path=args.out)
        browser.close()
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
