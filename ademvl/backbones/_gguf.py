"""De-quantising a GGUF causal LM into a plain float32 Hugging Face directory.

transformers reads GGUF files (``gguf_file=``; needs the ``gguf`` package) and
de-quantises them into dense tensors, but the model it returns carries a GGUF
quantizer and refuses ``save_pretrained``: the dense weights are copied into a
clean model built from the same config, which then saves as safetensors and
loads afterwards with the ordinary ``from_pretrained(path)``.
"""
from __future__ import annotations

import copy
from pathlib import Path


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """De-quantise ``gguf`` and ``save_pretrained`` a plain float32 model +
    tokenizer into ``out_dir`` (safetensors)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_dir, name = str(gguf.parent), gguf.name
    tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=name)
    kwargs = {"gguf_file": name, "dtype": torch.float32}
    try:  # ask for dense weights even if a GGUF matmul kernel is installed
        from transformers import GgufConfig
        kwargs["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:
        pass
    src = AutoModelForCausalLM.from_pretrained(gguf_dir, **kwargs)
    # The GGUF-loaded model carries an hf_quantizer and refuses save_pretrained;
    # copy its (already dense) weights into a clean model built from the config.
    config = copy.deepcopy(src.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config._name_or_path = ""
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = src.state_dict()
    for k, v in state.items():
        if type(v) is not torch.Tensor and not isinstance(v, torch.nn.Parameter):
            raise RuntimeError(f"GGUF weight {k} is still packed ({type(v).__name__})")
    model.load_state_dict(state, strict=True)
    model.generation_config = copy.deepcopy(src.generation_config)
    model.eval()
    del src, state
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)


def load_converted(path: Path, **kwargs):
    """``(model, tokenizer)`` from a directory :func:`convert_gguf` wrote (model in eval mode)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, **kwargs).eval()
    return model, AutoTokenizer.from_pretrained(path)
