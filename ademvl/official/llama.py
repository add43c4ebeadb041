"""Meta's original LLaMA layout → a Hugging Face directory, by transformers' own conversion script.

What official ADEM-VL users hold is `weights/tokenizer.model` + `weights/7B/{consolidated.00.pth,
params.json}`. transformers converts that with `models/llama/convert_llama_weights_to_hf.py`
(it permutes wq/wk for HF's rotary layout, writes config, weights and tokenizer). Only
releases up to 4.x ship it in the package; transformers 5 (5.24 included) ships no
per-model conversion scripts, so the script is taken from, in this order: `script` (the
file, e.g. from a 4.x source tree, run with this interpreter), `python` (the interpreter of
an environment whose transformers ships it, run as a module there), or this environment's
transformers when it ships it. Nothing here re-implements it: this module only stages the
files where the script looks for them, runs it, checks the result, and moves it in place.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from ..atomic import replace_dir, staging_dir

SCRIPT_MODULE = "transformers.models.llama.convert_llama_weights_to_hf"
# The script's --model_size names, by the number of consolidated.*.pth shards (LLaMA-1 sizes).
SIZE_BY_SHARDS = {1: "7B", 2: "13B", 4: "30B", 8: "65B"}


class LlamaConversionError(ValueError):
    """The conversion cannot run or did not produce a usable directory; the message says why."""


def script_command(script: str | os.PathLike | None = None, python: str | os.PathLike | None = None) -> list[str]:
    """How to run the conversion script (see the module docstring for the order)."""
    if script is not None:
        if not Path(script).is_file():
            raise LlamaConversionError(f"conversion script '{script}' not found")
        return [sys.executable, str(script)]
    if python is not None:
        if not (Path(python).is_file() and os.access(python, os.X_OK)):
            raise LlamaConversionError(f"python interpreter '{python}' not found or not executable")
        return [str(python), "-m", SCRIPT_MODULE]
    if importlib.util.find_spec("transformers.models.llama") and importlib.util.find_spec(SCRIPT_MODULE):
        return [sys.executable, "-m", SCRIPT_MODULE]
    import transformers

    raise LlamaConversionError(
        f"transformers {transformers.__version__} does not ship convert_llama_weights_to_hf.py (4.x releases do): "
        "pass --python PATH to the python of an environment with transformers 4.x, or --script PATH to the file "
        "(src/transformers/models/llama/convert_llama_weights_to_hf.py of a 4.x source tree)")


def meta_files(input_dir: str | os.PathLike) -> dict[str, Path]:
    """params.json, the consolidated.*.pth shards and tokenizer.model (in `input_dir` or, as in the
    official layout `weights/7B` + `weights/tokenizer.model`, its parent)."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise LlamaConversionError(f"LLaMA directory '{input_dir}' not found")
    shards = sorted(input_dir.glob("consolidated.*.pth"))
    tokenizer = next((d / "tokenizer.model" for d in (input_dir, input_dir.parent) if (d / "tokenizer.model").is_file()),
                     None)
    missing = [name for name, found in (("params.json", (input_dir / "params.json").is_file()),
                                        ("consolidated.00.pth", bool(shards)), ("tokenizer.model", tokenizer))
               if not found]
    if missing:
        raise LlamaConversionError(f"'{input_dir}' is not a Meta-layout LLaMA: no {', '.join(missing)} "
                                   "(tokenizer.model may also sit one folder up)")
    files = {"params.json": input_dir / "params.json", "tokenizer.model": tokenizer}
    files.update({shard.name: shard for shard in shards})
    return files


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def check_tokenizer(output: Path, tokenizer_model: Path) -> None:
    """The converted tokenizer must give SentencePiece's own ids (what the official code uses) on a probe."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(output))
    except (OSError, ValueError, TypeError) as error:
        raise LlamaConversionError(f"the converted tokenizer does not load: {_last_line(str(error))}") from None
    try:
        import sentencepiece
    except ImportError:
        return  # nothing to compare with; the equality is tested in the suite
    sp = sentencepiece.SentencePieceProcessor(model_file=str(tokenizer_model))
    probe = "Context: N/A\nQuestion: Which is a mammal?\nOptions: (A) cat (B) fish\nResponse:The answer is"
    for text in ("Image: ", "Image: N/A", probe):
        if tokenizer(text, add_special_tokens=False)["input_ids"] != sp.encode(text):
            raise LlamaConversionError(f"the converted tokenizer splits {text!r} unlike tokenizer.model itself")
    if (tokenizer.bos_token_id, tokenizer.eos_token_id) != (sp.bos_id(), sp.eos_id()):
        raise LlamaConversionError("the converted tokenizer's bos/eos ids differ from tokenizer.model's")


def convert_llama(input_dir, output, script=None, python=None, model_size: str | None = None) -> Path:
    """Run transformers' conversion on `input_dir` and move the result to `output` (nothing on failure)."""
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise LlamaConversionError(f"output '{output}' already exists and is not an empty directory")
    files = meta_files(input_dir)
    shards = sum(name.startswith("consolidated.") for name in files)
    if model_size is None:
        if shards not in SIZE_BY_SHARDS:
            raise LlamaConversionError(f"{shards} consolidated shards: pass --model-size")
        model_size = SIZE_BY_SHARDS[shards]
    command = script_command(script, python)
    with staging_dir(output) as work:
        stage, result = work / "meta", work / "hf"
        stage.mkdir()
        for name, path in files.items():  # what the script expects in one --input_dir
            os.symlink(Path(path).resolve(), stage / name)
        # Only the options every version of the script has (--safe_serialization changed type across them).
        run = subprocess.run([*command, "--input_dir", str(stage), "--model_size", model_size,
                              "--output_dir", str(result)], capture_output=True, text=True)
        if run.returncode != 0:
            raise LlamaConversionError(f"transformers' conversion script failed: {_last_line(run.stderr or run.stdout)}")
        if not (result / "config.json").is_file():
            raise LlamaConversionError("transformers' conversion script wrote no config.json")
        check_tokenizer(result, files["tokenizer.model"])
        replace_dir(result, output)  # an empty `output` (checked above) is replaced
    return output
