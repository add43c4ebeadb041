"""Adapters on the Hugging Face Hub: only the adapter travels, never the frozen backbones.

`resolve_adapter("user/repo")` gives a local directory through `huggingface_hub`'s
`snapshot_download` (its cache, `HF_HUB_OFFLINE`, mirrors and tokens all apply) and fetches
only the adapter files; a local directory is returned as it is. `push_adapter_to_hub` uploads
what `save_adapter` writes (the weights, their config, and the `config.json` /
`processor_config.json` that let `AutoModelForImageTextToText.from_pretrained("user/repo")` and
`AutoProcessor` load it: `ademvl.auto`) plus a model card naming the backbones it needs.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .auto import PROCESSOR_CONFIG, TRANSFORMERS_CONFIG
from .checkpoint import CONFIG_NAME, LEGACY_NAMES, WEIGHTS_NAME, AdapterError, ResolvedAdapter, read_adapter

ADAPTER_FILES = [CONFIG_NAME, WEIGHTS_NAME, *LEGACY_NAMES.values(), TRANSFORMERS_CONFIG, PROCESSOR_CONFIG, "README.md"]


def resolve_adapter(name_or_path: str | os.PathLike, revision: str | None = None, **hub_kwargs) -> Path:
    """A local adapter directory for a path or a Hub repo id (`user/repo`); `hub_kwargs` (`cache_dir`,
    `token`, `local_files_only`, ...) go to `snapshot_download`."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    name = str(name_or_path)
    if path.exists() or name.count("/") != 1 or name.startswith((".", "/")):
        raise FileNotFoundError(f"checkpoint directory not found: {name} (nor is it a Hub repo id user/repo)")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id=name, revision=revision, allow_patterns=ADAPTER_FILES,
                                      **hub_kwargs))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise AdapterError(f"cannot get adapter '{name}' from the Hub: {first}") from error


def open_adapter(source: str | os.PathLike | ResolvedAdapter, revision: str | None = None,
                 **hub_kwargs) -> ResolvedAdapter:
    """A local adapter directory or a Hub repo id (`user/repo`, at `revision`), found and its config read
    once (`ResolvedAdapter`, passed as it is)."""
    if isinstance(source, ResolvedAdapter):
        return source
    return read_adapter(resolve_adapter(source, revision, **hub_kwargs))


def model_card(model) -> str:
    c = model.config
    return (f"---\nlibrary_name: ademvl\ntags: [ademvl, {c.method}, vision-language]\n---\n\n"
            f"# {c.method} adapter (ademvl)\n\nOnly the trainable weights of a `{c.method}` adapter; the frozen "
            f"backbones are loaded from where they live:\n\n- LLM: `{c.llm_name_or_path}`\n"
            f"- vision tower: `{c.vision_name_or_path}`\n\n```python\nimport ademvl  # makes transformers' Auto "
            f"classes know ademvl\nfrom transformers import pipeline\n\npipe = pipeline(\"image-text-to-text\", "
            f"model=\"<this repo>\")\n```\n\nor `VLModel.from_adapter(\"<this repo>\", llm=..., vision=...)` "
            f"(`ademvl.model`) with the backbones elsewhere.\n")


def stage_adapter(model, directory: str | os.PathLike) -> Path:
    """What an upload sends: the adapter files and a model card, nothing of the backbones."""
    directory = Path(directory)
    model.save_adapter(directory)
    (directory / "README.md").write_text(model_card(model))
    return directory


def push_adapter_to_hub(model, repo_id: str, private: bool | None = None, token: str | None = None,
                        commit_message: str = "Upload ademvl adapter") -> str:
    """Create `repo_id` if needed and upload only the adapter; returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = stage_adapter(model, tmp)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message)
    return str(getattr(info, "commit_url", info))
