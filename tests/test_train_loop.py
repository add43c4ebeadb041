"""The trainer on tiny on-disk backbones: it learns, resumes exactly, stops on NaN, handles bad images."""
import json

import pytest
import torch
from safetensors.torch import load_file

from ademvl.model import VLModel
from ademvl.training import NonFiniteLossError, TrainingError, load_recipe, train
from ademvl.training.metrics import read_metrics
from ademvl.training.state import checkpoint_dirs
from train_tiny import nan_loss_on_call


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def root(tiny_run_root):
    return tiny_run_root("train")


def recipe(root, *overrides):
    return load_recipe(root / "tiny.yaml", list(overrides))


def weights(run_dir):
    return load_file(str(run_dir / "adapter" / "ademvl_adapter.safetensors"))


def test_short_training_lowers_the_loss(root, tmp_path):
    result = train(recipe(root, "train.lr=3e-2", "train.epochs=4", "train.keep_last=1"),
                   output_dir=tmp_path / "run", progress=False)
    losses = [m["loss"] for m in read_metrics(result.run_dir)]
    assert result.steps == result.total_steps == len(losses) == 12  # 12 records / batch 4 × 4 epochs
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.3, losses
    assert result.final_loss == losses[-1] and result.steps_per_second > 0
    # the saved adapter rebuilds the model from the recorded backbone paths
    model = VLModel.from_adapter(result.adapter_dir)
    assert model.config.prompt_template == "Question: {prompt}\nAnswer:"  # easy-VQA's, for generate/viz
    for name, p in model.trainable_parameters().items():
        torch.testing.assert_close(p.detach(), weights(result.run_dir)[name], rtol=0, atol=0)
    assert len(checkpoint_dirs(result.run_dir)) == 1  # keep_last
    logged = read_metrics(result.run_dir)[0]
    assert set(logged) >= {"step", "epoch", "loss", "lr", "samples_per_s"}


def test_killed_and_resumed_run_ends_with_identical_weights(root, tmp_path):
    # 8 records, batch 2 × accumulation 2 → 2 steps per epoch; warm-up, dropout and 2 epochs all in play
    overrides = ("data.limit=8", "train.batch_size=2", "train.grad_accum=2", "train.warmup_epochs=0.5", "train.save_every=1",
                 "train.keep_last=3")
    straight = train(recipe(root, *overrides), output_dir=tmp_path / "straight", progress=False)
    first = train(recipe(root, *overrides), output_dir=tmp_path / "resumed", progress=False, stop_after=1)
    assert first.steps == 1 and first.stopped_early  # stopped mid-epoch, after an accumulated step
    resumed = train(recipe(root, *overrides), output_dir=tmp_path / "resumed", progress=False, resume=True)
    assert resumed.resumed_from.name == "step-00000001" and resumed.steps == straight.steps == 4
    a, b = weights(straight.run_dir), weights(resumed.run_dir)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert resumed.final_loss == straight.final_loss
    # without the restored RNG the dropout masks differ and so do the weights (the test can fail)
    assert [m["loss"] for m in read_metrics(straight.run_dir)] == [m["loss"] for m in read_metrics(resumed.run_dir)]


def test_run_dir_with_checkpoints_needs_resume(root, tmp_path):
    train(recipe(root, "train.max_steps=1"), output_dir=tmp_path / "run", progress=False)
    with pytest.raises(TrainingError, match="already has checkpoints: pass --resume"):
        train(recipe(root, "train.max_steps=1"), output_dir=tmp_path / "run", progress=False)
    with pytest.raises(TrainingError, match="no checkpoint"):
        train(recipe(root), output_dir=tmp_path / "empty", progress=False, resume=True)


def test_nan_loss_stops_the_run_naming_the_step(root, tmp_path, monkeypatch):
    nan_loss_on_call(monkeypatch, 3)
    with pytest.raises(NonFiniteLossError, match="loss is nan at step 3 "):
        train(recipe(root), output_dir=tmp_path / "run", progress=False)


def test_bad_image_names_file_and_record_or_is_skipped(root, tmp_path):
    bad = tmp_path / "data"
    import shutil

    shutil.copytree(root / "easyvqa", bad)
    (bad / "train" / "images" / "4.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"4\.png.*record train_4"):
        train(recipe(root, f"data.data_dir={bad}"), output_dir=tmp_path / "a", progress=False)
    result = train(recipe(root, f"data.data_dir={bad}", "data.skip_bad=true", "train.max_steps=1"),
                   output_dir=tmp_path / "b", progress=False)
    assert (result.skipped, result.examples) == (1, 11)
    summary = json.loads((result.run_dir / "train_summary.json").read_text())
    assert summary["skipped"] == 1


def test_cli_trains_and_reports(root, tmp_path, capsys):
    from ademvl.cli import main

    code = main(["train", str(root / "tiny.yaml"), "train.max_steps=1", "train.epochs=1",
                 "--output-dir", str(tmp_path / "cli"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "trained 1/3 steps" in out and str(tmp_path / "cli" / "adapter") in out
    assert main(["train", str(root / "tiny.yaml"), "train.nope=1"]) == 2
    assert "unknown recipe key 'train.nope'" in capsys.readouterr().err

