"""train.sharding=fsdp: FSDP2 over two CPU processes (gloo, torchrun) trains what one process trains at the
same global batch (pre-norm, post-norm, MoE and parallel blocks), each rank storing half of the frozen LLM; a
SIGKILLed run resumes bit-identically; it composes with gradient checkpointing and bf16; one process or
bitsandbytes weights are refused in one line."""
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from ademvl.cli import main
from ademvl.training import load_recipe, train
from ademvl.training.launch import describe, fewer_than_asked
from ademvl.training.metrics import read_metrics
from ademvl.training.safestate import load_state
from ademvl.training.state import checkpoint_dirs
from child_process import free_port, sigkill_when

# 8 records, answers of very different lengths, no dropout (both runs must compute the same thing).
# One process: batch 4 × accum 2; two: batch 2 × accum 2 each. Every optimizer step is the whole epoch.
# grad_clip 1e6 never clips; it makes the trainer log each step's gradient norm, which AdamW's updates
# alone would not show (they barely change if every gradient is scaled by the same factor).
COMMON = ["data.limit=8", "model.method_config.adapter_dropout=0.0", "train.warmup_epochs=0", "train.lr=1e-3",
          "train.grad_accum=2", "train.epochs=6", "train.save_every=1", "train.keep_last=2", "train.grad_clip=1e6"]
FSDP = ["train.sharding=fsdp", "train.batch_size=2"]


@pytest.fixture(scope="module")
def root(tiny_run_root):
    return tiny_run_root("fsdp", varied=True)


def torchrun(root, out, *overrides, resume=False, popen=False):
    """`python -m torch.distributed.run --nproc_per_node 2 -m ademvl.cli train ...` (gloo on CPU)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "ademvl.cli", "train", str(root / "tiny.yaml"),
           f"data.data_dir={root / 'varied'}", *COMMON, *FSDP, *overrides, "--output-dir", str(out), "--no-progress",
           *(["--resume"] if resume else [])]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if popen:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def adapter(run_dir):
    return load_file(str(run_dir / "adapter" / "ademvl_adapter.safetensors"))


def max_diff(a, b):
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.fixture(scope="module")
def sharded(root, tmp_path_factory):
    """One uninterrupted 6-step FSDP run (the reference of the equality and the resume tests)."""
    out = tmp_path_factory.mktemp("sharded") / "run"
    proc = torchrun(root, out, "train.save_rank_weights=true")
    assert proc.stdout.count("trained 6/6 steps") == 1  # only rank 0 reports
    assert proc.stderr.count("[train] 2 processes (gloo, cpu), sharding fsdp") == 1
    return out


def test_fsdp_equals_one_process_at_the_same_global_batch(root, sharded, tmp_path):
    recipe = load_recipe(root / "tiny.yaml", [f"data.data_dir={root / 'varied'}", *COMMON, "train.batch_size=4"])
    single = train(recipe, output_dir=tmp_path / "single", progress=False)
    assert single.steps == 6
    reference, fsdp = adapter(single.run_dir), adapter(sharded)
    assert max_diff(fsdp, reference) <= 1e-4
    # the same gradients, not just the same Adam steps: FSDP2's average over ranks is undone (loss × world)
    norms = [(m["grad_norm"], r["grad_norm"]) for m, r in zip(read_metrics(sharded), read_metrics(single.run_dir))]
    assert len(norms) == 6 and all(abs(a - b) <= 1e-4 * b for a, b in norms), norms
    first = load_file(str(sharded / "rank_weights" / "rank0.safetensors"))
    assert max_diff(first, fsdp) == 0.0  # rank 0's gathered weights are the adapter it wrote
    assert all(v.dtype == torch.float32 for v in fsdp.values())
    # the checkpoint holds the whole optimizer state, in the unsharded format: moments shaped like the weights
    checkpoint = checkpoint_dirs(sharded)[-1]
    state = load_state(checkpoint / "optimizer.safetensors")
    never_trained = "vision.model.encoder.layers.2.mlp.adapter"  # features come from the penultimate block
    shapes = sorted(tuple(entry["exp_avg"].shape) for entry in state["state"].values())
    assert shapes == sorted(tuple(v.shape) for k, v in fsdp.items() if not k.startswith(never_trained))


# One family per block shape besides pre-norm: the fusion wraps what FSDP shards (a post-norm block with
# sliding-window layers, a whole sparse MoE block with its router, a parallel block).
@pytest.mark.parametrize("arch", ["gemma3_text", "mixtral", "phi"])
def test_fsdp_equals_one_process_on_each_block_shape(arch, tiny_run_root, tmp_path):
    root = tiny_run_root(f"fsdp-{arch}", varied=True, llm_arch=arch)
    short = ["train.epochs=2", "train.save_every=0"]
    sharded = tmp_path / "sharded"
    assert "trained 2/2 steps" in torchrun(root, sharded, *short).stdout
    recipe = load_recipe(root / "tiny.yaml", [f"data.data_dir={root / 'varied'}", *COMMON, *short,
                                              "train.batch_size=4"])
    single = train(recipe, output_dir=tmp_path / "single", progress=False)
    reference = adapter(single.run_dir)
    assert max_diff(adapter(sharded), reference) <= 1e-4
    norms = [(m["grad_norm"], r["grad_norm"]) for m, r in zip(read_metrics(sharded), read_metrics(single.run_dir))]
    assert len(norms) == 2 and all(abs(a - b) <= 1e-4 * b and b > 0 for a, b in norms), norms


def test_each_rank_stores_half_of_the_frozen_llm(sharded):
    ranks = [json.loads((sharded / "rank_weights" / f"rank{r}.json").read_text()) for r in (0, 1)]
    totals = {r["llm"]["total_bytes"] for r in ranks}
    assert len(totals) == 1 and ranks[0]["sharding"] == "fsdp" and ranks[0]["world_size"] == 2
    total = totals.pop()
    fractions = [r["llm"]["local_bytes"] / total for r in ranks]
    assert all(0.45 <= f <= 0.55 for f in fractions), fractions
    assert sum(r["llm"]["local_bytes"] for r in ranks) >= total  # the shards cover the whole LLM


def test_sigkilled_fsdp_run_resumes_bit_identically(root, sharded, tmp_path):
    killed = tmp_path / "killed"
    proc = torchrun(root, killed, popen=True)
    sigkill_when(proc, (killed / "checkpoints" / "step-00000001").exists, "training", timeout=180,
                 group=True)  # torchrun and both ranks
    done_before = max(int(p.name.split("-")[1]) for p in checkpoint_dirs(killed))
    assert 1 <= done_before < 6
    resumed = torchrun(root, killed, resume=True)
    assert "trained 6/6 steps" in resumed.stdout
    a, b = adapter(sharded), adapter(killed)
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_fsdp_composes_with_gradient_checkpointing_and_bf16(root, tmp_path):
    out = tmp_path / "bf16"
    proc = torchrun(root, out, "train.epochs=1", "train.save_every=0", "train.gradient_checkpointing=true",
                    "train.mixed_precision=bf16", "model.dtype=bfloat16", "train.grad_clip=1.0",
                    "train.save_rank_weights=true")
    assert "trained 1/1 steps" in proc.stdout
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["final_loss"] is not None and torch.isfinite(torch.tensor(summary["final_loss"]))
    weights = adapter(out)
    assert all(v.dtype == torch.float32 and bool(torch.isfinite(v).all()) for v in weights.values())
    rank = json.loads((out / "rank_weights" / "rank1.json").read_text())["llm"]
    assert 0.45 <= rank["local_bytes"] / rank["total_bytes"] <= 0.55


@pytest.mark.parametrize("override, needle", [
    ("train.sharding=fsdp", "several processes, but this run has 1"),
    ("model.quantization=4bit", "cannot shard the 4bit bitsandbytes weights"),
    ("train.sharding=zero3", "train.sharding must be one of none, fsdp"),
])
def test_refusals_are_one_line_and_leave_no_run_dir(root, tmp_path, capsys, monkeypatch, override, needle):
    for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "run"
    extra = ["train.sharding=fsdp"] if override.startswith("model.") else []
    code = main(["train", str(root / "tiny.yaml"), override, *extra, "--output-dir", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and needle in err, err
    assert not out.exists()


def test_a_launch_that_started_fewer_processes_than_asked_says_so(monkeypatch):
    """What `accelerate launch --num_processes 2` leaves on a CPU: one process, MASTER_ADDR, no WORLD_SIZE."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "False")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    warning = fewer_than_asked(1)
    assert "started 1" in warning and "--multi_gpu" in warning and "torchrun" in warning and "\n" not in warning
    assert fewer_than_asked(2) is None
    monkeypatch.delenv("MASTER_ADDR")  # plain `accelerate launch` (one process asked for)
    assert fewer_than_asked(1) is None
    assert describe(2, "gloo", "cpu", "fsdp") == "[train] 2 processes (gloo, cpu), sharding fsdp"
    assert describe(1, None, "cpu", "none") == "[train] 1 process (cpu), sharding none"
