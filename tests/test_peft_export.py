"""LLaVA-LoRA's LoRA part in peft's own format: `PeftModel` loads it with the same logits; merged
for deployment, the model answers the same."""
import pytest
import torch

from ademvl.peft_export import export_peft_adapter, merge_lora, unmerge_lora
from tiny import tiny_llm
from tiny_methods import build, inputs, liven


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_exported_lora_loads_in_peft_model_with_equal_logits(arch, tmp_path):
    from peft import PeftConfig, PeftModel

    model = liven(build("llava-lora", arch=arch))
    export_peft_adapter(model, tmp_path / "peft")
    assert PeftConfig.from_pretrained(str(tmp_path / "peft")).peft_type == "LORA"
    peft_model = PeftModel.from_pretrained(tiny_llm(arch, 0), str(tmp_path / "peft")).eval()
    x = inputs("llava-lora", image_rows=(0, 0))  # text only: the LLM with its LoRA is the whole model
    with torch.no_grad():
        ours = model(**x).logits
        theirs = peft_model(input_ids=x["input_ids"]).logits
        plain = tiny_llm(arch, 0)(input_ids=x["input_ids"]).logits
    assert (ours - plain).abs().max() > 1e-3  # the LoRA update is there
    assert (ours - theirs).abs().max().item() <= 1e-6


def test_merged_model_answers_the_same_and_unmerges(tmp_path):
    model = liven(build("llava-lora"))
    x = inputs("llava-lora", image_rows=(1, 0))
    with torch.no_grad():
        before = model(**x).logits
        assert merge_lora(model) == 4  # q and v of 2 blocks
        merged = model(**x).logits
        unmerge_lora(model)
        after = model(**x).logits
    assert (merged - before).abs().max().item() <= 1e-5
    assert (after - before).abs().max().item() <= 1e-5  # the frozen weights are back


def test_other_methods_are_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match="only llava-lora") as info:
        export_peft_adapter(build("memvp"), tmp_path / "x")
    assert "\n" not in str(info.value) and not (tmp_path / "x").exists()


def test_cli_exports_peft_and_merged_llm(tmp_path, capsys):
    """Through the command line, from a saved adapter on saved backbones."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from ademvl.cli import main
    from ademvl.model import VLModel
    from tiny import tiny_vision

    tiny_llm("llama", 0).save_pretrained(tmp_path / "llm")
    tiny_vision("clip", 1).save_pretrained(tmp_path / "vision")
    model = liven(VLModel.from_backbones(tmp_path / "llm", tmp_path / "vision", method="llava-lora"))
    model.save_adapter(tmp_path / "adapter")
    assert main(["export", "peft", str(tmp_path / "adapter"), "--output", str(tmp_path / "peft"),
                 "--merged-llm", str(tmp_path / "merged")]) == 0
    ids = inputs("llava-lora", image_rows=(0, 0))["input_ids"]
    with torch.no_grad():
        ours = model.eval()(input_ids=ids, has_image=torch.zeros(2)).logits
        merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")(input_ids=ids).logits
        peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tmp_path / "llm"),
                                         str(tmp_path / "peft"))(input_ids=ids).logits
    assert (merged - ours).abs().max().item() <= 1e-5 and (peft - ours).abs().max().item() <= 1e-6
    assert main(["export", "peft", str(tmp_path / "adapter"), "--output", str(tmp_path / "peft")]) == 2
    assert "already exists" in capsys.readouterr().err
