"""The official recipes carry the README's commands; `model.official` trains in the official
layout and the adapter records it."""
from __future__ import annotations

import pytest

from ademvl.checkpoint import read_adapter_config
from ademvl.cli import main
from ademvl.recipes import load_recipe
from ademvl.training.schedule import scaled_lr
from train_tiny import write_recipe

README = {  # train.py flags of the README's three commands
    "scienceqa-7b-official": dict(epochs=20, warmup_epochs=2, dataset="scienceqa"),
    "coco-caption-7b-official": dict(epochs=5, warmup_epochs=0.1, dataset="coco"),
    "instruction-7b-official": dict(epochs=15, warmup_epochs=0.2, dataset="llava_instruct"),
}


@pytest.mark.parametrize("name", sorted(README))
def test_official_recipes_are_the_readme_commands(name):
    r = load_recipe(name)
    want = README[name]
    assert r.model.official is True and r.model.method == "ademvl"
    assert (r.train.epochs, r.train.warmup_epochs, r.data.dataset) == (want["epochs"], want["warmup_epochs"],
                                                                        want["dataset"])
    assert r.train.batch_size * r.train.grad_accum * 8 == 32  # --batch_size 2 --accum_iter 2 on 8 GPUs
    assert scaled_lr(r.train.blr, 32) == pytest.approx(9e-3 * 32 / 256)
    assert (r.train.weight_decay, r.train.max_length, r.train.seed, r.train.grad_clip) == (0.02, 512, 42, None)
    mc = r.model.method_config
    assert (mc["alpha"], mc["beta"], mc["gamma"], mc["scales"], mc["adapter_dim"]) == (0.1, 0.01, 0.1, [256, 64], 12)
    assert r.model.vision == "openai/clip-vit-large-patch14"


def test_training_with_official_records_it(tmp_path, capsys):
    recipe = write_recipe(tmp_path, train={"epochs": 1, "max_steps": 1})
    code = main(["train", str(recipe), "model.official=true", "--no-progress"])
    assert code == 2 and "no layout for dataset 'easyvqa'" in capsys.readouterr().err  # easy-VQA has none
    from tiny_eval import make_scienceqa

    sqa = make_scienceqa(tmp_path / "sqa")
    code = main(["train", str(recipe), "model.official=true", "data.dataset=scienceqa", f"data.root={sqa}",
                 "data.val_fraction=null", "data.data_dir=null", "data.prompt_format=CQM-A", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert read_adapter_config(tmp_path / "run" / "adapter")["official"] == "scienceqa"
