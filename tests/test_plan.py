"""`ademvl plan`: the activation formula against counted saved-tensor bytes, the paper's 7B setting,
70B on one 80 GB GPU and what makes it fit, the new presets, exit codes."""
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from ademvl.cli import main
from ademvl.model import VLModel
from ademvl.plan import PlanInput, plan, shape_for, suggest
from ademvl.plan.activations import activation_bytes
from ademvl.plan.shape import model_shape
from ademvl.presets import LLM_PRESETS
from plan_measure import measured_bytes, tiny_pair

SIZES = [  # hidden, intermediate, layers, heads, kv heads, vision width, vision blocks, batch, text
    (64, 176, 2, 4, 2, 32, 3, 2, 24),
    (128, 344, 3, 8, 4, 48, 4, 3, 40),
]


@pytest.mark.parametrize("method", ["ademvl", "llava-lora"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("checkpointing", [False, True])
def test_activation_formula_matches_counted_bytes(method, size, checkpointing):
    hidden, inter, layers, heads, kv, vision_hidden, vision_layers, batch, text = size
    llm, vision = tiny_pair(hidden, inter, layers, heads, kv, vision_hidden, vision_layers)
    settings = {"feature_layer": -1, **({"scales": (16, 4)} if method == "ademvl" else {})}
    model = VLModel.from_backbones(llm, vision, method=method, method_config=settings)
    measured = measured_bytes(model, batch, text, answer_len=8, checkpointing=checkpointing)
    acts = activation_bytes(model_shape(model, method), batch, text, 8, 4, checkpointing)
    planned = acts.saved + acts.visual_memory  # what autograd holds (the recompute peak is transient)
    assert abs(planned - measured) / measured < 0.15, (planned, measured)


def run_plan(capsys, *argv):
    code = main(["plan", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_paper_7b_setting_fits(capsys):
    code, out, _ = run_plan(capsys, "--llm", "llama-7b", "--vision", "clip-vit-l-14", "--method", "ademvl",
                            "--batch", "4", "--seq-len", "512", "--precision", "bf16", "--gpus", "1", "--gpu-gb", "80")
    assert code == 0 and "FITS" in out and "DOES NOT FIT" not in out
    code, out, _ = run_plan(capsys, "--batch", "4", "--precision", "fp16", "--json")
    assert code == 0 and json.loads(out)["fits"] is True


def test_70b_bf16_on_one_gpu_does_not_fit_and_the_suggestion_does():
    shape = shape_for("llama-3-70b", "clip-vit-l-14", "ademvl")
    base = PlanInput(llm="llama-3-70b", batch=4, seq_len=512, precision="bf16", gpus=1, gpu_gb=80)
    assert not plan(shape, base).fits
    switches, fixed = suggest(shape, base)
    assert "4bit" in switches or "fsdp" in switches
    assert plan(shape, fixed).fits
    assert plan(shape, PlanInput(**{**base.__dict__, "quantization": "4bit", "checkpointing": True})).fits
    assert plan(shape, PlanInput(**{**base.__dict__, "sharding": "fsdp", "gpus": 8, "checkpointing": True})).fits
    # 4-bit NF4 with double quantization: ~0.516 bytes per quantized weight, not 0.5
    four = plan(shape, PlanInput(**{**base.__dict__, "quantization": "4bit"})).frozen_weights
    assert 0.5 * shape.frozen_quantizable < four - 2 * shape.frozen_other < 0.52 * shape.frozen_quantizable


def test_70b_cli_exit_code_and_suggestion(capsys):
    code, out, _ = run_plan(capsys, "--llm", "llama-3-70b", "--json")
    result = json.loads(out)
    assert code == 1 and result["fits"] is False and result["fits_with"] is not None
    assert result["fits_with_total"] <= result["capacity"]
    code, out, _ = run_plan(capsys, "--llm", "llama-3-70b")
    assert "DOES NOT FIT" in out and "fits with:" in out


@pytest.mark.parametrize("argv, names", [
    (["--llm", "no-such-model"], "no-such-model"),
    (["--batch", "0"], "--batch"),
    (["--answer-tokens", "600"], "--answer-tokens"),
    (["--precision", "fp8"], "--precision"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, names):
    with pytest.raises(SystemExit) as raised:  # argparse choices exit by themselves
        raise SystemExit(main(["plan", *argv]))
    err = capsys.readouterr().err
    assert raised.value.code == 2
    assert len(err.strip().splitlines()) == 1 and names in err


def test_local_config_directory(tmp_path, capsys):
    LLM_PRESETS["qwen3-8b"]().save_pretrained(tmp_path / "llm")
    code, out, _ = run_plan(capsys, "--llm", str(tmp_path / "llm"), "--json")
    assert code in (0, 1) and json.loads(out)["trainable_params"] == 4_530_432


@pytest.mark.parametrize("name, params", [  # public parameter counts of these models
    ("llama-3-8b", 8_030_261_248), ("llama-3-70b", 70_553_706_496),
    ("qwen3-8b", 8_190_735_360), ("qwen3-32b", 32_762_123_264),
])
def test_new_presets_match_public_sizes(name, params):
    with torch.device("meta"):
        llm = AutoModelForCausalLM.from_config(LLM_PRESETS[name]())
    assert sum(p.numel() for p in llm.parameters()) == params
