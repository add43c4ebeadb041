"""Every answer token weighs the same in an optimizer step, however the step's samples are split:
grad-accum 2 × batch B equals batch 2B, and 2 processes (gloo) equal 1 at the same global batch,
on answers from one token to dozens (updated float32 weights within 1e-6)."""
import os
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from ademvl.training import load_recipe, train
from child_process import free_port

# No dropout: the two splits of a step must see the same computation, not the same random masks.
# lr 1e-3: Adam divides by |g|, so float32 rounding in near-zero gradients moves a weight by ~lr·1e-4;
# the old mean of micro-batch means moved them by ~4e-3 here.
COMMON = ["data.limit=8", "model.method_config.adapter_dropout=0.0", "train.warmup_epochs=0", "train.lr=1e-3",
          "train.keep_last=1"]


@pytest.fixture(scope="module")
def root(tiny_run_root):
    return tiny_run_root("tokens", varied=True)


def run(root, out, *overrides):
    recipe = load_recipe(root / "tiny.yaml", [f"data.data_dir={root / 'varied'}", *COMMON, *overrides])
    return train(recipe, output_dir=out, progress=False)


def adapter(run_dir):
    return load_file(str(run_dir / "adapter" / "ademvl_adapter.safetensors"))


def max_diff(a, b):
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_answers_differ_in_length(root):
    """The premise: with equal weights per micro-batch these splits would train differently."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(root / "llm"))
    lengths = {len(tok(" " + a)["input_ids"]) for a in ["red", "a dark green square drawn with thin diagonal "
                                                          "stripes on a white page"]}
    assert max(lengths) >= 5 * min(lengths)


def test_grad_accumulation_equals_the_joined_batch(root, tmp_path):
    joined = run(root, tmp_path / "joined", "train.batch_size=4", "train.grad_accum=1", "train.epochs=2")
    split = run(root, tmp_path / "split", "train.batch_size=2", "train.grad_accum=2", "train.epochs=2")
    assert joined.steps == split.steps == 4
    assert max_diff(adapter(joined.run_dir), adapter(split.run_dir)) <= 1e-6
    assert abs(joined.final_loss - split.final_loss) <= 1e-5
    first = run(root, tmp_path / "one-step", "train.batch_size=4", "train.max_steps=1")
    assert max_diff(adapter(first.run_dir), adapter(joined.run_dir)) > 1e-3  # the 4 steps did move the weights


def test_two_processes_equal_one_at_the_same_global_batch(root, tmp_path):
    single = run(root, tmp_path / "single", "train.batch_size=4", "train.epochs=1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "ademvl.cli", "train", str(root / "tiny.yaml"),
           f"data.data_dir={root / 'varied'}", *COMMON, "train.batch_size=2", "train.epochs=1",
           "train.save_rank_weights=true", "--output-dir", str(tmp_path / "ddp"), "--no-progress"]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trained 2/2 steps" in proc.stdout and single.steps == 2
    ranks = [load_file(str(tmp_path / "ddp" / "rank_weights" / f"rank{r}.safetensors")) for r in (0, 1)]
    reference = adapter(single.run_dir)
    assert max_diff(ranks[0], reference) <= 1e-6
    assert max_diff(ranks[1], reference) <= 1e-6
