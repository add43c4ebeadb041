"""The real sweep runner (ademvl.training + ademvl.evaluation) on tiny on-disk fixtures."""
import functools
import json

import yaml

from ademvl.visualize import runner
from ademvl.visualize.sweep import run_sweep
from train_tiny import write_recipe


def test_real_runner_trains_evaluates_and_resumes(tmp_path):
    recipe = write_recipe(tmp_path / "fixtures")
    run = functools.partial(runner.run_setting, eval_split="train", eval_limit=3, batch_size=3)
    overrides = {"train.epochs": 1, "train.max_steps": 1}
    result = run_sweep(str(recipe), {"gamma": [0.0, 0.5]}, tmp_path / "sweep", overrides=overrides, runner=run,
                       log=lambda _: None)
    assert len(result.executed) == 2 and result.plot.data["subplots"] == 1
    for record in result.runs:
        assert 0.0 <= record["metrics"]["accuracy"] <= 100.0
        run_dir = tmp_path / "sweep" / "runs" / record["id"]
        saved = yaml.safe_load((run_dir / "recipe.yaml").read_text())
        assert saved["model"]["method_config"]["gamma"] == record["value"]
        config = json.loads((run_dir / "adapter" / "ademvl_adapter.json").read_text())
        assert config["method_config"]["gamma"] == record["value"]
    again = run_sweep(str(recipe), {"gamma": [0.0, 0.5]}, tmp_path / "sweep", overrides=overrides, runner=run,
                      log=lambda _: None)
    assert again.executed == []
