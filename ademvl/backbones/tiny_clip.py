"""The easy-VQA demo's tiny CLIP vision tower: where its cached directory is, built on first use.

The tower (vision: 64 px, patch 8 -> 8x8 grid + [cls]) is pretrained on easy-VQA TRAIN images only
(``pip install --no-deps easy-vqa``); the pipeline, from labels to linear probes, is
:mod:`ademvl.backbones.pretrain.tiny_clip`. Here: the cache. Only the vision half is kept, as a
``CLIPVisionModel`` together with a ``CLIPImageProcessor`` (PIL backend, size 64, crop 64), written
atomically into ``$ADEMVL_CACHE/easyvqa-clip-64`` (or ``~/.cache/ademvl/easyvqa-clip-64``) with the
recipe and seed that built it, and rebuilt when either changes. Load it with
``CLIPVisionModel.from_pretrained(path)`` and ``AutoImageProcessor.from_pretrained(path, backend="pil")``.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ._cache import built_once, resolve_cache_dir
from .pretrain import tiny_clip as pretraining
from .pretrain.tiny_clip import TinyClipRecipe, probe_tower  # noqa: F401  (the tower's public API)

DEFAULT_CACHE_NAME = "easyvqa-clip-64"
FORMAT_VERSION = 1


def recipe_dict(recipe: TinyClipRecipe, seed: int) -> dict:
    return {"kind": "easyvqa-tiny-clip", "format_version": FORMAT_VERSION, "seed": int(seed),
            "recipe": dataclasses.asdict(recipe)}


def tiny_clip_path(cache_dir: str | os.PathLike | None = None, seed: int = 0,
                   progress: bool = True, recipe: TinyClipRecipe | None = None) -> Path:
    """Directory of the easy-VQA tiny CLIP vision tower (``CLIPVisionModel`` +
    ``CLIPImageProcessor``), built on first use (~4-5 min on 2 CPU cores) and
    reused while its stored recipe + seed match the requested ones."""
    recipe = recipe or TinyClipRecipe()
    target = resolve_cache_dir(cache_dir, DEFAULT_CACHE_NAME)
    want = recipe_dict(recipe, seed)
    return built_once(target, want, lambda tmp: pretraining.build_tower(tmp, recipe, seed, progress),
                      what="easy-VQA tiny CLIP tower", expected="~4-5 min on 2 cores",
                      preflight=pretraining.easy_vqa_data_dir)  # fail fast with the install hint
