"""What only a CUDA GPU can show (`pytest -m cuda`, run by benchmarks/gpu_check.sh): bf16 and fp16
training on the GPU, a 4-bit frozen LLM on the GPU, the memory a 4-bit LLM saves there.
Deselected by default (pyproject's addopts) and skipped without a GPU."""
import json
import math
import subprocess
import sys

import pytest
import torch

from tiny_methods import ALL_METHODS, build, inputs, liven
from train_tiny import write_recipe

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def labelled(method, device):
    batch = inputs(method, image_rows=(1, 1))
    labels = batch["input_ids"].clone()
    labels[:, :-4] = -100
    return {k: v.to(device) for k, v in {**batch, "labels": labels}.items()}


@pytest.mark.parametrize("method", ALL_METHODS)
def test_bf16_training_step_on_the_gpu_follows_fp32_on_the_cpu(method):
    cpu = liven(build(method)).train()
    reference = cpu(**labelled(method, "cpu")).loss.item()
    gpu = liven(build(method)).to("cuda", torch.bfloat16)
    for p in gpu.trainable_parameters().values():
        p.data = p.data.float()
    gpu.train()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = gpu(**labelled(method, "cuda")).loss
    loss.backward()
    assert abs(loss.item() - reference) < 0.02
    for name, p in gpu.trainable_parameters().items():
        assert p.dtype == torch.float32 and (p.grad is None or torch.isfinite(p.grad).all()), name


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_train_command_with_mixed_precision_on_the_gpu(tmp_path, precision):
    recipe = write_recipe(tmp_path, train={"epochs": 2, "lr": 1e-2})
    proc = subprocess.run([sys.executable, "-m", "ademvl.cli", "train", str(recipe), f"train.mixed_precision={precision}",
                           "--output-dir", str(tmp_path / precision), "--no-progress"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    losses = [json.loads(line)["loss"] for line in (tmp_path / precision / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]


def test_4bit_llm_on_the_gpu_trains_and_saves_memory(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from ademvl.model import VLModel
    from ademvl.quantized import quantization_of
    from tiny import tiny_vision

    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=128, hidden_size=512, intermediate_size=1408, num_hidden_layers=4,
                                 num_attention_heads=8, num_key_value_heads=8)).save_pretrained(tmp_path / "llm")
    sizes = {}
    for quantization in (None, "4bit"):
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated()
        model = VLModel.from_backbones(tmp_path / "llm", tiny_vision(), dtype=torch.bfloat16,
                                       quantization=quantization, scales=(16, 4))
        if quantization is None:
            model.to("cuda")
        else:  # bitsandbytes placed the LLM on the GPU; the rest joins it
            model.vision.to("cuda")
            model.method.to("cuda")
        for p in model.trainable_parameters().values():
            p.data = p.data.float()
        sizes[quantization] = torch.cuda.memory_allocated() - before
        if quantization:
            assert quantization_of(model.llm) == "4bit"
            model.train()
            g = torch.Generator().manual_seed(0)
            device = model.method_device  # where bitsandbytes placed the LLM
            ids = torch.randint(3, 128, (2, 20), generator=g).to(device)
            labels = ids.clone()
            labels[:, :-4] = -100
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(input_ids=ids, pixel_values=torch.randn(2, 3, 32, 32).to(device), labels=labels,
                             has_image=torch.tensor([1, 1]).to(device),
                             image_slot=torch.tensor([2, 2]).to(device)).loss
            loss.backward()
            grads = [p.grad for p in model.trainable_parameters().values() if p.grad is not None]
            assert grads and all(torch.isfinite(g).all() for g in grads) and any(g.abs().any() for g in grads)
        del model
    assert sizes["4bit"] < 0.5 * sizes[None], sizes
