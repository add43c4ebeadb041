"""The baselines' trainable counts (SPEC §2–3) on the meta device, their variants, and options."""
import pytest
import torch

from ademvl.cli import main
from ademvl.model import VLModel
from tiny import HIDDEN, tiny_llm, tiny_vision


@pytest.mark.parametrize("method, llm, sets, expected", [
    ("bottleneck", "llama2-7b", [], "4,559,872"),   # 32·102,416 + 24·25,616 + 659,584 + 8,192
    ("lavin", "llama-7b", [], "3,781,296"),
    ("lavin", "llama-13b", ["temperature=5"], "5,390,080"),
    ("memvp", "llama-7b", [], "3,879,040"),
    ("llava-lora", "llama-7b", [], "4,395,136"),    # projector + LoRA r=6 on q,v + vision adapters
])
def test_spec_counts(capsys, method, llm, sets, expected):
    sets = [a for s in sets for a in ("--set", s)]
    assert main(["params", "--method", method, "--llm", llm, "--vision", "clip-vit-l-14", *sets]) == 0
    assert f"trainable: {expected}" in capsys.readouterr().out


def bottleneck_count(dim, groups, group_down, c, c_v, layers, v_layers, n_neck=128, every_ffn=1):
    def adapter(width):
        down = width * dim // (groups if group_down else 1) + dim
        return down + dim * width // groups + width
    neck = c_v * n_neck + n_neck + n_neck * c + c
    return every_ffn * (layers * adapter(c) + v_layers * adapter(c_v)) + neck + 2 * c


@pytest.mark.parametrize("dim, groups, group_down", [(16, 2, False), (4, 2, False), (8, 2, False), (32, 2, False),
                                                     (16, 4, False), (16, 2, True), (16, 1, False)])
def test_bottleneck_table2_variants(dim, groups, group_down):
    model = VLModel.from_backbones(tiny_llm(), tiny_vision(), method="bottleneck", neck_every=1,
                                   adapter_dim=dim, groups=groups, group_down=group_down)
    expected = bottleneck_count(dim, groups, group_down, HIDDEN, 32, 2, 3)
    assert model.parameter_counts()["trainable"] == expected


def test_bottleneck_before_ffn_and_gated_neck():
    model = VLModel.from_backbones(tiny_llm(), tiny_vision(), method="bottleneck", neck_every=1, before_ffn=True)
    assert model.parameter_counts()["trainable"] == bottleneck_count(16, 2, False, HIDDEN, 32, 2, 3, every_ffn=2)
    gated = VLModel.from_backbones(tiny_llm(), tiny_vision(), method="bottleneck", neck_every=1, neck_gated=True)
    extra = 32 * 128 + 128  # the gate's second input projection
    assert gated.parameter_counts()["trainable"] == bottleneck_count(16, 2, False, HIDDEN, 32, 2, 3) + extra
    assert gated.method.num_input_tokens == 3


def test_neck_reads_every_fourth_block_of_vit_l():
    from ademvl.presets import build_on_meta

    model = build_on_meta("llama2-7b", "clip-vit-l-14", "bottleneck")
    assert model.method.feature_layers == [4, 8, 12, 16, 20, 24]
    assert model.method.num_input_tokens == 6 and model.method.num_prefix_tokens == 1


def test_llava_lora_uses_peft_layers():
    from peft.tuners.lora import LoraLayer

    model = VLModel.from_backbones(tiny_llm(), tiny_vision(), method="llava-lora", lora_rank=2)
    lora = [m for m in model.llm.modules() if isinstance(m, LoraLayer)]
    assert len(lora) == 2 * 2  # q_proj and v_proj of both blocks
    names = set(model.trainable_parameters())
    assert sum(".lora_A." in n or ".lora_B." in n for n in names) == 8
    assert model.method.num_input_tokens == 16  # the tiny tower's 4×4 patches


@pytest.mark.parametrize("method, settings, message", [
    ("bottleneck", dict(groups=5, neck_every=1), "groups=5 must divide"),
    ("memvp", dict(num_slots=8), "num_slots=8 is smaller than the tower's 16 patch tokens"),
    ("lavin", dict(neck_every=9), "neck_every=9"),
    ("llava-lora", dict(lora_targets=("nope",)), "cannot put LoRA on modules"),
])
def test_bad_settings_are_named(method, settings, message):
    with pytest.raises(ValueError, match=message):
        VLModel.from_backbones(tiny_llm(), tiny_vision(), method=method, **settings)


def test_4bit_loading_keeps_the_trainable_count(tmp_path):
    pytest.importorskip("bitsandbytes")
    tiny_llm().save_pretrained(tmp_path / "llm")
    plain = VLModel.from_backbones(tmp_path / "llm", tiny_vision(), method="bottleneck", neck_every=1)
    quantized = VLModel.from_backbones(tmp_path / "llm", tiny_vision(), method="bottleneck", neck_every=1,
                                       quantization="4bit")
    assert quantized.parameter_counts() == plain.parameter_counts()  # 4-bit weights count as the weights they hold
