"""Two CPU processes (gloo) through torchrun: DDP keeps every rank's trainable weights identical."""
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

from ademvl.model import VLModel
from child_process import free_port
from train_tiny import write_recipe


def test_two_processes_end_with_identical_trainable_weights(tmp_path):
    recipe = write_recipe(tmp_path, train={"epochs": 1, "save_rank_weights": True, "lr": 1e-2})
    run_dir = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "ademvl.cli", "train", str(recipe), "train.grad_accum=2",
           "train.batch_size=2", "--output-dir", str(run_dir), "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("trained 2/2 steps") == 1  # only rank 0 reports; 12 records / (2 × 2 × 2 ranks) → 2 steps
    rank0 = load_file(str(run_dir / "rank_weights" / "rank0.safetensors"))
    rank1 = load_file(str(run_dir / "rank_weights" / "rank1.safetensors"))
    initial = VLModel.from_backbones(str(tmp_path / "llm"), str(tmp_path / "vision"),
                                     scales=(16, 4)).trainable_parameters()
    assert rank0.keys() == rank1.keys() == initial.keys()
    last_adapter = "vision.model.encoder.layers.2.mlp.adapter"  # features come from the penultimate block
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
        if not name.startswith(last_adapter):
            assert not torch.equal(rank0[name], initial[name].detach()), f"{name} did not train"
    # both ranks wrote their RNG state into the checkpoint, so the run can resume on 2 processes
    checkpoint = run_dir / "checkpoints" / "step-00000002"
    assert (checkpoint / "rng_state_0.safetensors").is_file() and (checkpoint / "rng_state_1.safetensors").is_file()
