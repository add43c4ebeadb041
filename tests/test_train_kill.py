"""A real SIGKILL of a CLI training run, then --resume: the same weights as a run never stopped."""
import os
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from ademvl.training import load_recipe, train
from ademvl.training.metrics import read_metrics
from ademvl.training.state import checkpoint_dirs
from child_process import sigkill_when
from train_tiny import write_recipe


# Same thread count as the killed subprocess (OMP_NUM_THREADS=1), so float sums match bit for bit.
pytestmark = pytest.mark.usefixtures("one_thread")


def weights(run_dir):
    return load_file(str(run_dir / "adapter" / "ademvl_adapter.safetensors"))


def test_sigkilled_run_resumes_to_the_uninterrupted_result(tmp_path):
    """Killed right after its first checkpoint (possibly mid-way through writing the next one)."""
    root = tmp_path
    write_recipe(root)
    overrides = ["data.limit=8", "train.batch_size=2", "train.grad_accum=2", "train.epochs=10",
                 "train.warmup_epochs=1", "train.save_every=1", "train.keep_last=2"]
    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "ademvl.cli", "train", str(root / "tiny.yaml"), *overrides,
                             "--output-dir", str(killed_dir), "--no-progress"],
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sigkill_when(proc, (killed_dir / "checkpoints" / "step-00000001").exists, "training process")
    assert proc.returncode == -signal.SIGKILL
    done_before = max(int(p.name.split("-")[1]) for p in checkpoint_dirs(killed_dir))
    assert done_before < 20
    resumed = train(load_recipe(root / "tiny.yaml", overrides), output_dir=killed_dir, progress=False, resume=True)
    straight = train(load_recipe(root / "tiny.yaml", overrides), output_dir=tmp_path / "straight", progress=False)
    assert resumed.steps == straight.steps == 20
    a, b = weights(straight.run_dir), weights(resumed.run_dir)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    # steps logged after the last checkpoint before the kill are trained again and logged once
    assert [m["step"] for m in read_metrics(killed_dir)] == list(range(1, 21))
