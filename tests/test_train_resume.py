"""--resume with changed settings: a longer run keeps training on the schedule rebuilt for it; a run
capped by max_steps continues bit-identically; metrics.jsonl holds every step once."""
import json
import logging

import pytest
import torch
from safetensors.torch import load_file

from ademvl.training import load_recipe, lr_at, train
from ademvl.training.metrics import read_metrics


@pytest.fixture(scope="module")
def root(tiny_run_root):
    return tiny_run_root("resume")


def recipe(root, *overrides):
    # 12 records / batch 4 → 3 steps per epoch
    return load_recipe(root / "tiny.yaml", ["train.warmup_epochs=1", "train.lr=3e-3", *overrides])


def weights(run_dir):
    return load_file(str(run_dir / "adapter" / "ademvl_adapter.safetensors"))


def test_more_epochs_on_resume_train_on_the_rebuilt_schedule(root, tmp_path, caplog):
    out = tmp_path / "run"
    three = train(recipe(root, "train.epochs=3"), output_dir=out, progress=False)
    assert three.steps == three.total_steps == 9
    before = weights(out)
    with caplog.at_level(logging.WARNING, logger="ademvl.training.trainer"):
        five = train(recipe(root, "train.epochs=5"), output_dir=out, progress=False, resume=True)
    assert five.steps == five.total_steps == 15 and not five.stopped_early
    # one line says what changed and that the schedule follows it
    notes = [r.getMessage() for r in caplog.records if "changed settings" in r.getMessage()]
    assert len(notes) == 1 and "train.epochs 3→5" in notes[0] and "rebuilt" in notes[0] and "\n" not in notes[0]
    logged = read_metrics(out)
    assert [m["step"] for m in logged] == list(range(1, 16))  # every step once
    # steps 10-15 ran at the 5-epoch schedule's lrs (the formula, not the trainer), all non-zero
    expected = [lr_at(step - 1, 3, 5, 1.0, 3e-3) for step in range(10, 16)]
    assert [m["lr"] for m in logged[9:]] == pytest.approx(expected, rel=1e-6)
    assert all(lr > 0 for lr in expected)
    after = weights(out)
    assert max(float((after[k] - before[k]).abs().max()) for k in after) > 1e-4
    assert "epochs: 5" in (out / "recipe.yaml").read_text()  # the run is now a 5-epoch run


def test_a_run_capped_by_max_steps_continues_as_if_never_capped(root, tmp_path):
    capped = train(recipe(root, "train.epochs=2", "train.max_steps=4", "train.save_every=2"),
                   output_dir=tmp_path / "capped", progress=False)
    assert capped.steps == 4 and capped.stopped_early
    resumed = train(recipe(root, "train.epochs=2", "train.save_every=2"), output_dir=tmp_path / "capped",
                    progress=False, resume=True)
    straight = train(recipe(root, "train.epochs=2", "train.save_every=2"), output_dir=tmp_path / "straight",
                     progress=False)
    assert resumed.steps == straight.steps == 6
    a, b = weights(straight.run_dir), weights(resumed.run_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_metrics(resumed.run_dir) == [
        {**m, "samples_per_s": r["samples_per_s"], "step_seconds": r["step_seconds"]}
        for m, r in zip(read_metrics(straight.run_dir), read_metrics(resumed.run_dir))]


def test_metric_lines_after_the_checkpoint_are_dropped_on_resume(root, tmp_path):
    """A kill between logging step 4 and saving it, mid-way through writing a line: step 4 is trained
    again and logged once."""
    out = tmp_path / "run"
    train(recipe(root, "train.epochs=2"), output_dir=out, progress=False, stop_after=3)
    with open(out / "metrics.jsonl", "a") as handle:
        handle.write(json.dumps({"step": 4, "loss": 1.0, "lr": 0.0}) + "\n" + '{"step": 5, "lo')
    train(recipe(root, "train.epochs=2"), output_dir=out, progress=False, resume=True)
    steps = [m["step"] for m in read_metrics(out)]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert read_metrics(out)[3]["loss"] != 1.0
