"""bf16 on the CPU: frozen backbones stored in bf16, run under autocast, trainable weights kept in fp32,
for every method; and the train/eval/generate commands that choose it."""
import copy
import subprocess
import sys

import pytest
import torch

from tiny_methods import ALL_METHODS, build, inputs, liven
from train_tiny import write_recipe

# bf16 keeps 8 bits of mantissa: the loss of a tiny model's batch moves by a few thousandths.
LOSS_TOLERANCE = 0.02
GRADIENT_COSINE = 0.9


def bf16_copy(model):
    """The same model with its frozen backbones in bf16 and its trainable weights in fp32 (the trainer's)."""
    half = copy.deepcopy(model).to(torch.bfloat16)
    for p in half.trainable_parameters().values():
        p.data = p.data.float()
    return half


def labelled(method):
    batch = inputs(method, image_rows=(1, 1))
    labels = batch["input_ids"].clone()
    labels[:, :-4] = -100  # the loss on the last four tokens of each row
    return {**batch, "labels": labels}


@pytest.mark.parametrize("method", ALL_METHODS)
def test_bf16_training_steps_keep_fp32_adapters_and_the_fp32_loss(method):
    full = liven(build(method)).train()
    half = bf16_copy(full).train()
    batch = labelled(method)
    fp32_loss = full(**batch).loss
    fp32_loss.backward()
    optimizer = torch.optim.AdamW(half.trainable_parameters().values(), lr=1e-3)
    losses = []
    for step in range(3):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = half(**batch).loss
        loss.backward()
        if step == 0:  # same batch, same weights: bf16 follows fp32, and so do the gradients
            assert abs(loss.item() - fp32_loss.item()) <= LOSS_TOLERANCE, (loss.item(), fp32_loss.item())
            ours, theirs = [], []
            for name, p in half.trainable_parameters().items():
                reference = full.trainable_parameters()[name].grad
                if reference is None or not reference.abs().any():
                    continue
                assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().any(), name
                ours.append(p.grad.flatten())
                theirs.append(reference.flatten())
            # One weight's gradient can lose a lot to bf16 (cosine 0.7 for a LaVIN router); the whole step
            # points where fp32's does (0.93-1.0 measured across the five methods).
            cosine = torch.nn.functional.cosine_similarity(torch.cat(ours), torch.cat(theirs), dim=0)
            assert cosine > GRADIENT_COSINE, cosine.item()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]  # the steps train
    for name, p in half.trainable_parameters().items():
        assert p.dtype == torch.float32 and torch.isfinite(p).all(), name
    assert {p.dtype for n, p in half.named_parameters() if not p.requires_grad} == {torch.bfloat16}


@pytest.mark.parametrize("method", ["ademvl", "llava-lora"])
def test_bf16_generation_follows_fp32(method):
    full = liven(build(method))
    half = bf16_copy(full).eval()
    batch = inputs(method, image_rows=(1, 0))
    with torch.no_grad():
        plain = full(**batch).logits
        low = half(**batch).logits  # no autocast: the fp32 adapters meet bf16 activations directly
    assert low.dtype == torch.bfloat16
    assert (low.float() - plain).abs().max() < 0.1 * plain.abs().max()
    out = half.generate(**batch, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == batch["input_ids"].shape[1] + 3


def train_cli(recipe, output, *overrides):
    return subprocess.run([sys.executable, "-m", "ademvl.cli", "train", str(recipe), *overrides,
                           "--output-dir", str(output), "--no-progress"], capture_output=True, text=True, timeout=300)


def test_train_command_runs_bf16_on_the_cpu_and_saves_fp32_adapters(tmp_path):
    from safetensors.torch import load_file

    recipe = write_recipe(tmp_path, train={"epochs": 1})
    proc = train_cli(recipe, tmp_path / "bf16", "model.dtype=bfloat16", "train.mixed_precision=bf16")
    assert proc.returncode == 0, proc.stderr[-2000:]
    weights = load_file(str(tmp_path / "bf16" / "adapter" / "ademvl_adapter.safetensors"))
    assert weights and all(w.dtype == torch.float32 and torch.isfinite(w).all() for w in weights.values())


def test_auto_precision_on_the_cpu_follows_the_backbones():
    from ademvl.training.trainer import resolve_mixed_precision

    if torch.cuda.is_available():
        pytest.skip("on a GPU auto means bf16 or fp16 whatever the backbones")
    assert resolve_mixed_precision("auto", "bfloat16") == "bf16"
    assert resolve_mixed_precision("auto", None) == resolve_mixed_precision("auto", "float32") == "no"
    assert resolve_mixed_precision("bf16") == "bf16"


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 trains on a CUDA GPU")
def test_fp16_on_the_cpu_is_refused_in_one_line_before_the_run_dir_exists(tmp_path):
    recipe = write_recipe(tmp_path)
    proc = train_cli(recipe, tmp_path / "fp16", "train.mixed_precision=fp16")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "ademvl train: error: train.mixed_precision=fp16 needs a CUDA GPU (fp16 trains with a loss scaler); "
        "use bf16 (or no) on a CPU"]
    assert not (tmp_path / "fp16").exists()


def test_generate_and_eval_take_bfloat16_on_the_cpu(tmp_path):
    recipe = write_recipe(tmp_path, train={"epochs": 1})
    assert train_cli(recipe, tmp_path / "run").returncode == 0
    adapter = tmp_path / "run" / "adapter"
    image = tmp_path / "easyvqa" / "train" / "images" / "0.png"
    generate = subprocess.run([sys.executable, "-m", "ademvl.cli", "generate", "--checkpoint", str(adapter),
                               "--image", str(image), "--prompt", "what colour is the shape?", "--dtype", "bfloat16",
                               "--device", "cpu", "--max-new-tokens", "3"], capture_output=True, text=True, timeout=300)
    assert generate.returncode == 0, generate.stderr[-2000:]
    evaluate = subprocess.run([sys.executable, "-m", "ademvl.cli", "eval", "--checkpoint", str(adapter), "--dataset",
                               "easyvqa", "--data-root", str(tmp_path / "easyvqa"), "--split", "train", "--dtype",
                               "bfloat16", "--device", "cpu", "--no-progress", "--output", str(tmp_path / "e.json")],
                              capture_output=True, text=True, timeout=300)
    assert evaluate.returncode == 0, evaluate.stderr[-2000:]
    assert (tmp_path / "e.json").is_file()
