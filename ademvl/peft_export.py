"""LLaVA-LoRA's LoRA layers as a standard peft adapter of the frozen LLM, and merging them.

The LoRA layers are peft's own (`inject_adapter_in_model`), so the LLM already carries their
`LoraConfig` and `get_peft_model_state_dict` gives peft's names: the exported directory is what
`PeftModel.save_pretrained` writes, and `PeftModel.from_pretrained(llm, directory)` rebuilds the
tuned LLM. The projector and vision adapters are not part of an LLM adapter: they stay in the
ademvl adapter directory.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

from safetensors.torch import save_file

PEFT_WEIGHTS = "adapter_model.safetensors"  # peft's SAFETENSORS_WEIGHTS_NAME


def _lora_llm(model):
    if model.config.method != "llava-lora" or not hasattr(model.llm, "peft_config"):
        raise ValueError(f"only llava-lora adapters hold LoRA layers; this model's method is '{model.config.method}'")
    return model.llm


def export_peft_adapter(model, directory: str | os.PathLike) -> Path:
    """Write the LLM's LoRA layers in peft's format (config + safetensors, peft's key names)."""
    from peft import get_peft_model_state_dict

    llm = _lora_llm(model)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = copy.deepcopy(llm.peft_config["default"])
    config.base_model_name_or_path = model.config.llm_name_or_path
    config.inference_mode = True
    state = get_peft_model_state_dict(llm)
    # PeftModel keeps the LLM under `base_model.model`; its saved names carry that prefix.
    save_file({f"base_model.model.{name}": t.detach().cpu().contiguous() for name, t in state.items()},
              str(directory / PEFT_WEIGHTS), metadata={"format": "pt"})
    config.save_pretrained(str(directory))
    return directory


def merge_lora(model):
    """Fold every LoRA update into its frozen weight, in place, for faster inference.

    Uses peft's own `merge()` of each LoRA layer (and `unmerge()` undoes it): the model then
    computes W' = W + s·BA once instead of the extra products at every token. Training or
    saving the adapter after merging would be wrong, so both are for the unmerged model.
    """
    from peft.tuners.lora import LoraLayer

    layers = [m for m in _lora_llm(model).modules() if isinstance(m, LoraLayer)]
    for layer in layers:
        layer.merge(safe_merge=True)
    return len(layers)


def unmerge_lora(model) -> int:
    from peft.tuners.lora import LoraLayer

    layers = [m for m in _lora_llm(model).modules() if isinstance(m, LoraLayer)]
    for layer in layers:
        layer.unmerge()
    return len(layers)
