"""Every ```python block of README.md and docs/*.md runs as written, each on its own (a fresh
namespace, as a reader who pastes it), in a working directory where the paths the examples name
exist: tiny random backbones at the Hub ids they use (transformers loads a local directory of
that name before asking the Hub, and the Hub is switched off), the adapter `ademvl demo` writes,
and the images. A block that needs what this machine cannot give (a GPU, network, an account)
carries `<!-- not run: <reason> -->` on the line right before it: it is skipped with that
reason, and there must stay few of them. A block that talks to `ademvl serve` at
127.0.0.1:8000 gets a real server on the fixture adapter, on a free port.
"""
from __future__ import annotations

import contextlib
import io
import re
import traceback
import warnings
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch

from child_process import running_server
from tiny import tiny_image_processor, tiny_llm, tiny_tokenizer, write_image

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN = re.compile(r"^\s*<!--\s*not run:\s*(?P<reason>.+?)\s*-->\s*$")
SERVE_URL = "http://127.0.0.1:8000"
OPTIONAL_HARNESSES = {"vlmeval", "lmms_eval"}  # installed by their own users; their tests skip the same way
MAX_NOT_RUN = 5

# What the examples name, as a user of the library would write it.
LLM_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
VISION_ID = "openai/clip-vit-large-patch14"
DEMO_ADAPTER = "runs/demo/ademvl/adapter"
ADAPTERS = [DEMO_ADAPTER, "runs/llava-instruct/adapter"]  # `ademvl demo`'s; a `llava-instruct` recipe run's
IMAGES = {"cat.png": (200, 120, 40), "shape.png": (30, 60, 220), "cat.jpg": (90, 90, 90)}


def python_blocks(path: Path) -> list[dict]:
    """The ```python blocks of a Markdown file: fence line number, code, and the not-run reason if any."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines[:-1], 1):
        assert not NOT_RUN.match(line) or lines[number].strip() == "```python", \
            f"{path.name}:{number}: a not-run marker must stand right above a ```python block"
    blocks, index = [], 0
    while index < len(lines):
        if lines[index].strip() == "```python":
            start = index + 1
            end = next((j for j in range(start, len(lines)) if lines[j].strip() == "```"), None)
            assert end is not None, f"{path.name}:{index + 1}: unclosed ```python block"
            before = NOT_RUN.match(lines[index - 1]) if index else None
            name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
            blocks.append({"where": f"{name}:{start}", "line": start,
                           "code": "\n".join(lines[start:end]) + "\n",
                           "not_run": before.group("reason") if before else None})
            index = end
        index += 1
    return blocks


BLOCKS = [block for path in DOCUMENTS for block in python_blocks(path)]


def _tiny_clip_at(directory: Path):
    """A CLIP tower with ViT-L/14's 16×16 patch grid (so scales 256 and 64 fit), 2 tiny layers."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(1)
    CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                     num_attention_heads=4, image_size=64, patch_size=4)).save_pretrained(directory)
    tiny_image_processor(64).save_pretrained(directory)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The directory the examples run in (built once): backbones, the demo adapter, images."""
    from ademvl.model import VLModel

    root = tmp_path_factory.mktemp("docs_examples")
    tokenizer = tiny_tokenizer()
    tiny_llm("llama", seed=0, vocab=len(tokenizer)).save_pretrained(root / LLM_ID)
    tokenizer.save_pretrained(root / LLM_ID)
    _tiny_clip_at(root / VISION_ID)
    model = VLModel.from_backbones(root / LLM_ID, root / VISION_ID, method="ademvl", scales=(16, 4))
    torch.manual_seed(2)
    with torch.no_grad():  # a tuned adapter's zero-initialised parts are not zero: the image matters
        for name, p in model.trainable_parameters().items():
            if name.endswith("pos_values") or "adapter.fc2" in name:
                p.normal_(0, 0.5)
    for adapter in ADAPTERS:
        model.save_adapter(root / adapter)
    for name, colour in IMAGES.items():
        write_image(root / name, colour, size=48)
    with pytest.MonkeyPatch.context() as patch, contextlib.ExitStack() as stack:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read once, at import
        patch.chdir(root)
        servers = {}

        def server_url() -> str:
            """`ademvl serve` on the demo adapter (started on first use, stopped after the module)."""
            if "url" not in servers:
                servers["url"] = stack.enter_context(running_server("--checkpoint", DEMO_ADAPTER, "--device", "cpu"))
            return servers["url"]

        yield {"root": root, "server_url": server_url}


def _fail(block: dict):
    """The traceback with the Markdown file's own line numbers, not pytest's view of a 700-line 'module'."""
    pytest.fail(f"the example at {block['where']} fails:\n{traceback.format_exc()}", pytrace=False)


def _run(block: dict, workdir: dict) -> str:
    code = block["code"]
    if SERVE_URL in code:
        code = code.replace(SERVE_URL, workdir["server_url"]())
    source = str(ROOT / block["where"].split(":")[0])  # tracebacks name the Markdown file's lines
    compiled = compile("\n" * block["line"] + code, source, "exec")
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exec(compiled, {"__name__": "__main__"})
    except ImportError as error:  # a harness adapter names the missing package in its own message
        missing = error.name or next(iter(re.findall(r"No module named '([\w.]+)'", str(error))), "")
        if missing.split(".")[0] in OPTIONAL_HARNESSES:
            pytest.skip(f"{missing} is not installed here")
        _fail(block)
    except Exception:
        _fail(block)
    deprecated = {f"{w.category.__name__}: {w.message}" for w in caught
                  if issubclass(w.category, (DeprecationWarning, FutureWarning))}
    assert not deprecated, f"the example at {block['where']} uses what is deprecated: {sorted(deprecated)}"
    return printed.getvalue()


@pytest.mark.parametrize("block", BLOCKS, ids=[block["where"] for block in BLOCKS])
def test_the_example_runs_as_written(block, workdir):
    if block["not_run"]:
        pytest.skip(f"not run: {block['not_run']}")
    _run(block, workdir)


def test_the_examples_not_run_are_few_and_say_why():
    skipped = [f"{block['where']}: {block['not_run']}" for block in BLOCKS if block["not_run"]]
    print("\n".join(["blocks not run:"] + skipped))
    assert len(BLOCKS) >= 4 and len(skipped) <= MAX_NOT_RUN, skipped


def test_the_runner_finds_blocks_and_their_markers(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n<!-- not run: needs a GPU -->\n```python\nimport torch\n```\n\n```python\nx = 1\n"
                    "```\n```bash\nls\n```\n")
    found = python_blocks(page)
    assert [(b["line"], b["code"], b["not_run"]) for b in found] == [(3, "import torch\n", "needs a GPU"),
                                                                    (7, "x = 1\n", None)]
    page.write_text("<!-- not run: stray -->\n\n```python\nx = 1\n```\n")
    with pytest.raises(AssertionError, match="page.md:1: a not-run marker must stand right above"):
        python_blocks(page)
    old_api = {"where": "page.md:1", "line": 1, "code": "import warnings\nwarnings.warn('use new()', FutureWarning)\n"}
    with pytest.raises(AssertionError, match=r"page.md:1 uses what is deprecated: \['FutureWarning: use new\(\)'\]"):
        _run(old_api, workdir={})
