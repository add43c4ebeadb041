"""A miniature of `ademvl demo`: tiny random LLM, a few solid-colour images, same code path."""
import json
import shutil

import pytest
import torch

from ademvl.cli import main
from ademvl.demo import DemoConfig, demo_method_config, format_table, run_demo
from train_tiny import COLOURS, write_backbones
from tiny import write_image


def write_split(root, split, n_images, questions_per_image=2):
    names = list(COLOURS)
    questions = []
    for i in range(n_images):
        colour = names[i % len(names)]
        write_image(root / split / "images" / f"{i}.png", COLOURS[colour], size=36)
        questions += [["what color is the shape?", colour, i]] * questions_per_image
    (root / split / "questions.json").write_text(json.dumps(questions))


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    llm, vision = write_backbones(root)
    data = root / "easyvqa"
    write_split(data, "train", 24)
    write_split(data, "test", 9, questions_per_image=1)
    (data / "answers.txt").write_text("\n".join(COLOURS) + "\n")
    return root, llm, vision, str(data)


def test_tuning_lifts_accuracy_above_the_floor(fixtures):
    torch.manual_seed(0)
    root, llm, vision, data = fixtures
    cfg = DemoConfig(methods=["ademvl"], train_questions=48, eval_questions=None, epochs=6, batch_size=8, lr=1e-2,
                     output_dir=str(root / "out"), llm=llm, vision=vision, data_dir=data, progress=False,
                     eval_batch_size=8)
    report = run_demo(cfg)
    rows = {r["method"]: r for r in report["rows"]}
    tuned, floor = rows["ademvl"], rows["frozen LLM, no image"]
    assert report["test_questions"] == 9
    assert tuned["overall"] > floor["overall"] + 30
    assert tuned["trainable"] > 0 and tuned["extra_tokens"] == 1 and floor["trainable"] == 0
    saved = json.loads((root / "out" / "demo_results.json").read_text())
    assert [r["method"] for r in saved["rows"]] == ["ademvl", "frozen LLM, no image"]
    from PIL import Image

    assert Image.open(root / "out" / "demo_results.png").size[0] > 200


def test_method_settings_follow_the_tower():
    class Tower:
        grid, num_layers = 8, 4

    assert demo_method_config("ademvl", Tower) == {"scales": [64, 16]}
    assert demo_method_config("memvp", Tower) == {"num_slots": 80}
    assert demo_method_config("lavin", Tower) == {"neck_every": 1}


def test_table_lists_every_column():
    rows = [{"method": "ademvl", "trainable": 1234, "extra_tokens": 1, "train_s": 10.0, "eval_s": 2.0,
             "overall": 91.25, "by_type": {"yes/no": 90.0, "color": 95.0, "shape": 88.0}}]
    text = format_table(rows)
    assert "1,234" in text and "91.2" in text and "88.0" in text and "shape" in text.splitlines()[0]
    assert "yes/no balanced" in text.splitlines()[0] and text.splitlines()[2].endswith("-")  # not scored: a dash
    rows[0]["yes_no"] = {"balanced": 50.25}
    assert format_table(rows).splitlines()[2].endswith("50.2")


def test_unknown_method_is_one_line(capsys, fixtures):
    root, llm, vision, data = fixtures
    assert main(["demo", "--methods", "ademvl,nope", "--llm", llm, "--vision", vision]) == 2
    assert "unknown method(s) ['nope']" in capsys.readouterr().err


def test_question_weights_parse_and_bad_ones_are_named(capsys):
    from ademvl.commands.demo import format_question_weights, parse_question_weights

    assert parse_question_weights("yes/no=2, color=1,shape=0.5") == {"yes/no": 2.0, "color": 1.0, "shape": 0.5}
    assert parse_question_weights(format_question_weights(DemoConfig().question_weights)) == DemoConfig().question_weights
    with pytest.raises(SystemExit):
        main(["demo", "--question-weights", "yes/no"])
    assert "'yes/no' is not TYPE=SHARE" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["demo", "--question-weights", "colour=2"])
    assert "unknown question type 'colour'" in capsys.readouterr().err


def test_balance_within_reaches_the_recipe_and_bad_keys_are_named(capsys):
    from ademvl.commands.demo import parse_balance_within
    from ademvl.demo.tuning import demo_recipe

    class Pipe:
        llm_dir, vision_dir = "llm", "vision"

    keys = parse_balance_within("asks_about, negated,answer")
    assert keys == ["asks_about", "negated", "answer"]
    recipe = demo_recipe("ademvl", {}, DemoConfig(balance_within=keys), Pipe, "run")
    assert recipe.data.balance_within == keys and recipe.data.balance_by == "qtype"
    assert demo_recipe("ademvl", {}, DemoConfig(), Pipe, "run").data.balance_within is None
    with pytest.raises(SystemExit):
        main(["demo", "--balance-within", "asks_about,colour"])
    assert "unknown key 'colour' (choose from asks_about, negated, answer)" in capsys.readouterr().err


def test_prompt_layout_reaches_the_recipe_and_bad_ones_are_refused(capsys):
    from ademvl.commands.demo import add_arguments, pipeline_config
    from ademvl.demo.tuning import demo_recipe
    import argparse

    class Pipe:
        llm_dir, vision_dir = "llm", "vision"

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = pipeline_config(parser.parse_args(["--prompt-layout", "chat"]))
    assert cfg.prompt_layout == "chat"
    assert demo_recipe("ademvl", {}, cfg, Pipe, "run").model.prompt_layout == "chat"
    assert demo_recipe("ademvl", {}, DemoConfig(), Pipe, "run").model.prompt_layout == "plain"
    with pytest.raises(SystemExit):
        main(["demo", "--prompt-layout", "official"])
    assert "invalid choice: 'official'" in capsys.readouterr().err


def test_the_floor_reads_its_questions_in_the_runs_layout_and_is_kept_per_layout(fixtures, monkeypatch):
    """A chat-layout comparison is measured against a chat-layout floor, and neither floor stands in for
    the other; the plain floor keeps the key it was recorded under before the option existed."""
    import ademvl.evaluation as evaluation
    from ademvl.collate import prompt_layout_of
    from ademvl.data import load_easyvqa
    from ademvl.demo.run import floor_row
    from ademvl.demo.tuning import Pipeline

    root, llm, vision, data = fixtures
    seen = []

    def fake_evaluate(model, *args, **kwargs):
        seen.append(prompt_layout_of(model))
        return {"metrics": {"overall": 0.0, "by_type": {}}}

    monkeypatch.setattr(evaluation, "evaluate", fake_evaluate)
    pipeline = Pipeline(llm, vision, None, load_easyvqa("test", data_dir=data), log=lambda message: None)
    out = root / "floors"
    out.mkdir()
    floor_row(DemoConfig(prompt_layout="chat"), pipeline, out)
    assert json.loads((out / "floor_result.json").read_text())["key"]["prompt_layout"] == "chat"
    floor_row(DemoConfig(), pipeline, out)  # the chat floor is not the plain one: scored again
    assert "prompt_layout" not in json.loads((out / "floor_result.json").read_text())["key"]
    floor_row(DemoConfig(), pipeline, out)  # same layout: reused
    assert seen == ["chat", "plain"]


def test_a_second_run_reuses_the_tuned_adapter_and_other_settings_are_not_overwritten(fixtures, monkeypatch, capsys):
    """Running the main job twice must not fail: same settings reuse the finished run, other settings
    stop with one line (nothing overwritten) until --retrain."""
    import ademvl.training as training

    root, llm, vision, data = fixtures
    out = root / "again"
    args = ["demo", "--llm", llm, "--vision", vision, "--train-questions", "16", "--epochs", "1",
            "--eval-questions", "3", "--no-floor", "--no-progress", "--data-dir", data, "--output-dir", str(out)]
    assert main(args) == 0
    first = json.loads((out / "demo_results.json").read_text())["rows"][0]
    weights = (out / "ademvl" / "adapter").stat().st_mtime_ns

    calls = []
    real_train = training.train
    monkeypatch.setattr(training, "train", lambda *a, **k: calls.append(1) or real_train(*a, **k))
    assert main(args) == 0
    second = json.loads((out / "demo_results.json").read_text())["rows"][0]
    assert calls == [] and second["reused"] and second["overall"] == first["overall"]
    assert "reusing the run already tuned" in capsys.readouterr().out
    moved = root / "moved"  # another output directory (another machine's copy): still the same run
    shutil.copytree(out, moved)
    assert main(args[:-1] + [str(moved)]) == 0
    assert calls == [] and json.loads((moved / "demo_results.json").read_text())["rows"][0]["reused"]
    capsys.readouterr()

    assert main(args[:-2] + ["--output-dir", str(out), "--lr", "0.02"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("ademvl demo: error: ") and "holds a ademvl run with other settings" in last
    assert "--retrain" in last
    assert (out / "ademvl" / "adapter").stat().st_mtime_ns == weights
    assert main(args + ["--lr", "0.02", "--retrain"]) == 0 and calls == [1]


def test_a_run_recorded_before_a_recipe_key_existed_is_still_the_same_run():
    from ademvl.demo.tuning import as_recorded, demo_recipe, same_recipe

    class Pipe:
        llm_dir, vision_dir = "llm", "vision"

    recipe = demo_recipe("ademvl", {}, DemoConfig(), Pipe, "run")
    older = as_recorded(recipe)
    del older["data"]["balance_within"]  # written by a library without the key
    assert same_recipe(older, recipe)
    older["data"]["limit"] = 7
    assert not same_recipe(older, recipe)
    assert not same_recipe(None, recipe)
    balanced = demo_recipe("ademvl", {}, DemoConfig(balance_within=["answer"]), Pipe, "run")
    assert not same_recipe(as_recorded(recipe), balanced)


def test_a_run_copied_to_another_output_directory_is_still_the_same_run():
    from ademvl.demo.tuning import as_recorded, demo_recipe, same_recipe

    class Pipe:
        llm_dir, vision_dir = "llm", "vision"

    here = demo_recipe("ademvl", {}, DemoConfig(), Pipe, "runs/compare/ademvl/n6000/seed0")
    elsewhere = demo_recipe("ademvl", {}, DemoConfig(), Pipe, "/other/machine/demo/ademvl")
    assert as_recorded(here)["train"]["output_dir"] != as_recorded(elsewhere)["train"]["output_dir"]
    assert same_recipe(as_recorded(elsewhere), here)
    other_seed = demo_recipe("ademvl", {}, DemoConfig(seed=1), Pipe, "/other/machine/demo/ademvl")
    assert not same_recipe(as_recorded(other_seed), here)
