"""Export a trained adapter to another ecosystem's format.

`ademvl export peft ADAPTER --output DIR`: LLaVA-LoRA's LoRA layers as a standard peft
LoRA adapter of the LLM (`PeftModel.from_pretrained(llm, DIR)`); add `--merged-llm DIR2` to
also write the LLM with the LoRA updates merged in (`merge_and_unload`), a plain Hugging Face
checkpoint for deployment. The projector and vision adapters stay in the ademvl adapter.
"""
from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("format", choices=["peft"], help="target format")
    parser.add_argument("checkpoint", help="ademvl adapter directory (llava-lora)")
    parser.add_argument("--output", required=True, help="new directory for the peft adapter")
    parser.add_argument("--merged-llm", default=None, help="also write the merged LLM here (save_pretrained)")
    parser.add_argument("--llm", default=None, help="LLM path if it moved since training")
    parser.add_argument("--vision", default=None, help="vision tower path if it moved since training")


def _fresh(path: str, option: str) -> Path:
    """Refuse to write into a directory that already holds files (nothing written is lost)."""
    target = Path(path)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ValueError(f"{option} '{target}' already exists and is not an empty directory")
    return target


def run(args) -> int:
    from ..checkpoint import read_adapter
    from ..model import VLModel
    from ..peft_export import export_peft_adapter

    output = _fresh(args.output, "--output")
    merged = _fresh(args.merged_llm, "--merged-llm") if args.merged_llm else None
    adapter = read_adapter(args.checkpoint)  # read once, passed on to from_adapter
    method = adapter.config["method"]
    if method != "llava-lora":
        raise ValueError(f"only llava-lora adapters hold LoRA layers to export; '{args.checkpoint}' is {method}")
    model = VLModel.from_adapter(adapter, llm=args.llm, vision=args.vision)
    export_peft_adapter(model, output)
    print(f"peft LoRA adapter written to {output} (PeftModel.from_pretrained(llm, '{output}'))")
    if merged is not None:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        base = AutoModelForCausalLM.from_pretrained(model.config.llm_name_or_path if args.llm is None else args.llm)
        PeftModel.from_pretrained(base, str(output)).merge_and_unload().save_pretrained(merged)
        try:
            AutoTokenizer.from_pretrained(model.config.llm_name_or_path if args.llm is None else args.llm).save_pretrained(merged)
        except (OSError, ValueError):
            pass  # an LLM directory without a tokenizer: the merged weights are still complete
        print(f"merged LLM written to {merged}")
    return 0
