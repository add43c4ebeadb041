"""run_sweep with a fake runner: each setting once, resumable, plot and JSON hold every run."""
import json

import pytest
from PIL import Image

from ademvl.cli import main
from ademvl.visualize import runner as runner_module
from ademvl.visualize.sweep import RECIPE_KEYS, plot_sweep, run_sweep, sweep_settings

GRID = {"alpha": [0.05, 0.1], "beta": [0.001, 0.01, 0.1], "gamma": [0.0, 0.1]}


class FakeRunner:
    """Records calls; 'accuracy' is a known function of the swept value so the plot data can be checked."""

    def __init__(self, fail_on: int | None = None):
        self.calls, self.fail_on = [], fail_on

    def __call__(self, recipe, overrides, output_dir):
        self.calls.append((recipe, dict(overrides), output_dir))
        if self.fail_on is not None and len(self.calls) == self.fail_on:
            raise RuntimeError("training crashed")
        swept = [v for k, v in overrides.items() if k.startswith("model.method_config.")]
        return {"accuracy": 50.0 + 100 * swept[0], "loss": 1.0}


def test_each_setting_runs_once_and_json_and_plot_hold_all_runs(tmp_path):
    fake = FakeRunner()
    result = run_sweep("demo", GRID, tmp_path, overrides={"train.epochs": 1}, runner=fake, log=lambda _: None)
    assert len(fake.calls) == 7 == len(result.executed) == len(result.runs)
    seen = set()
    for recipe, overrides, output_dir in fake.calls:
        assert recipe == "demo" and overrides["train.epochs"] == 1 and len(overrides) == 2
        (key, value), = [(k, v) for k, v in overrides.items() if k != "train.epochs"]
        seen.add((key, value))
        assert output_dir.parent == tmp_path / "runs"
    assert seen == {(RECIPE_KEYS[p], v) for p, values in GRID.items() for v in values}

    summary = json.loads((tmp_path / "sweep.json").read_text())
    assert len(summary["runs"]) == 7 and summary["recipe"] == "demo" and summary["metric"] == "accuracy"
    assert {(r["parameter"], r["value"]) for r in summary["runs"]} == {(p, v) for p, vs in GRID.items() for v in vs}
    for run in summary["runs"]:
        assert run["metrics"]["accuracy"] == pytest.approx(50 + 100 * run["value"])

    plot = result.plot
    assert plot.data["subplots"] == 3
    assert {name: len(xs) for name, (xs, ys) in plot.data["series"].items()} == {"alpha": 2, "beta": 3, "gamma": 2}
    xs, ys = plot.data["series"]["beta"]
    assert xs == [0.001, 0.01, 0.1] and ys == pytest.approx([50.1, 51.0, 60.0])
    assert Image.open(tmp_path / "sweep.png").size == plot.size == (900, 300)


def test_second_invocation_reruns_nothing(tmp_path):
    run_sweep("demo", GRID, tmp_path, runner=FakeRunner(), log=lambda _: None)
    first = json.loads((tmp_path / "sweep.json").read_text())
    again = FakeRunner()
    result = run_sweep("demo", GRID, tmp_path, runner=again, log=lambda _: None)
    assert again.calls == [] and result.executed == []
    assert json.loads((tmp_path / "sweep.json").read_text())["runs"] == first["runs"]


def test_interrupted_sweep_resumes_with_the_unfinished_settings_only(tmp_path):
    with pytest.raises(RuntimeError, match="training crashed"):
        run_sweep("demo", GRID, tmp_path, runner=FakeRunner(fail_on=3), log=lambda _: None)
    assert len(json.loads((tmp_path / "sweep.json").read_text())["runs"]) == 2  # progress kept
    resumed = FakeRunner()
    result = run_sweep("demo", GRID, tmp_path, runner=resumed, log=lambda _: None)
    assert len(resumed.calls) == 5 and len(result.runs) == 7


def test_changed_overrides_or_torn_result_files_are_rerun(tmp_path):
    run_sweep("demo", {"alpha": [0.1, 0.2]}, tmp_path, runner=FakeRunner(), log=lambda _: None)
    result_files = sorted((tmp_path / "runs").glob("*/sweep_result.json"))
    assert len(result_files) == 2
    result_files[0].write_text("{ torn")
    fake = FakeRunner()
    run_sweep("demo", {"alpha": [0.1, 0.2]}, tmp_path, runner=fake, log=lambda _: None)
    assert len(fake.calls) == 1
    other = FakeRunner()
    run_sweep("demo", {"alpha": [0.1, 0.2]}, tmp_path, overrides={"train.epochs": 2}, runner=other, log=lambda _: None)
    assert len(other.calls) == 2


def test_bad_sweeps_are_refused():
    with pytest.raises(ValueError, match="nothing to sweep"):
        sweep_settings({"alpha": []})
    with pytest.raises(ValueError, match="both swept"):
        sweep_settings({"gamma": [0.1]}, {"model.method_config.gamma": 0.2})
    with pytest.raises(ValueError, match="no metric 'accuracy'"):
        plot_sweep([{"id": "x", "parameter": "alpha", "value": 0.1, "metrics": {"CIDEr": 1.0}}], "/nonexistent/x.png")


def test_cli_sweep_uses_the_runner_and_resumes(tmp_path, monkeypatch, capsys):
    fake = FakeRunner()
    monkeypatch.setattr(runner_module, "run_setting", lambda recipe, overrides, out, **kw: fake(recipe, overrides, out))
    argv = ["sweep", "demo", "train.epochs=1", "--alpha", "0.1", "0.2", "--gamma", "0.3", "--output", str(tmp_path)]
    assert main(argv) == 0
    assert len(fake.calls) == 3 and fake.calls[0][1] == {"train.epochs": 1, "model.method_config.alpha": 0.1}
    assert "ran 3 new setting(s)" in capsys.readouterr().out
    assert main(argv) == 0 and len(fake.calls) == 3
    assert "ran 0 new setting(s)" in capsys.readouterr().out
    assert (tmp_path / "sweep.png").is_file()
    assert main(["sweep", "demo", "--output", str(tmp_path / "none")]) == 2
    assert "nothing to sweep" in capsys.readouterr().err
