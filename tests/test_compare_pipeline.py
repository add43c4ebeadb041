"""`ademvl compare` on the miniature pipeline (tiny random backbones, solid-colour easy-VQA): one row
per variant × size × seed, tables and curves, the same training draw per size and seed, one test draw,
finished runs reused, conflicting runs refused before any work."""
import csv
import json

import pytest
import yaml

from ademvl.cli import main
from train_tiny import write_backbones, write_easyvqa_splits

SIZES, SEEDS = (6, 12), (0, 1)
METHODS = ["ademvl", "bottleneck", "lavin", "memvp", "llava-lora"]


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    llm, vision = write_backbones(root)
    data = write_easyvqa_splits(root, train_images=12, test_images=4, yes_no=True)
    return root, llm, vision, data


def args_for(fixtures, out, *extra):
    root, llm, vision, data = fixtures
    return ["compare", "--llm", llm, "--vision", vision, "--data-dir", data, "--output-dir", str(out),
            "--epochs", "1", "--batch-size", "4", "--eval-questions", "all", "--eval-batch-size", "12",
            "--no-progress", *extra]


@pytest.fixture(scope="module")
def methods_run(fixtures):
    out = fixtures[0] / "methods"
    args = args_for(fixtures, out, "--variants", "methods", "--train-questions", ",".join(map(str, SIZES)),
                    "--seeds", ",".join(map(str, SEEDS)))
    assert main(args) == 0
    return out, args


def test_every_method_size_and_seed_has_one_row_and_a_curve_point(methods_run, fixtures):
    out, _ = methods_run
    result = json.loads((out / "compare_results.json").read_text())
    keys = [(r["variant"], r["size"], r["seed"]) for r in result["rows"]]
    assert sorted(keys) == sorted((v, n, s) for v in METHODS for n in SIZES for s in SEEDS)
    assert all(r["test_questions"] == 12 and not r["reused"] for r in result["rows"])
    # the 12 test questions: 4 colour + 8 yes/no, so every run is scored per question type too
    assert all(set(r["by_type"]) == {"color", "yes/no"} for r in result["rows"])

    points = {(p["variant"], p["size"]): p for p in result["points"]}
    assert len(points) == len(METHODS) * len(SIZES)
    for (variant, size), p in points.items():
        runs = [r["overall"] for r in result["rows"] if r["variant"] == variant and r["size"] == size]
        assert p["seeds"] == list(SEEDS)
        assert p["overall"][0] == pytest.approx(sum(runs) / 2)
        assert p["overall"][1] == pytest.approx(abs(runs[0] - runs[1]) / 2 ** 0.5)

    extra = {r["variant"]: r["extra_tokens"] for r in result["rows"]}
    trainable = {r["variant"]: r["trainable"] for r in result["rows"]}
    assert extra["ademvl"] == 1 and extra["memvp"] == 0 and extra["llava-lora"] == 16
    from ademvl.compare import VARIANTS
    from ademvl.loading import load_vision_tower
    from ademvl.model import VLModel
    from ademvl.vision import VisionTower

    _, llm, vision, _ = fixtures
    tower = VisionTower(load_vision_tower(vision))
    for v in METHODS:  # the parameters each method trains, counted on a model built afresh
        built = VLModel.from_backbones(llm, vision, method=v, method_config=VARIANTS[v].method_config(tower))
        assert trainable[v] == built.parameter_counts()["trainable"] > 0
    assert result["floor"]["trainable"] == 0

    with open(out / "compare_results.csv") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == len(METHODS) * len(SIZES) * len(SEEDS)
    assert {"variant", "size", "seed", "overall", "yes/no", "trainable", "train_s", "eval_s"} <= set(table[0])

    text = (out / "compare_results.md").read_text()
    assert "| variant | 6 | 12 |" in text and "#### Accuracy: yes/no" in text and "#### Cost" in text
    assert all(f"| {m} |" in text for m in METHODS) and " ± " in text
    assert "pairs apart" in text and "Overall: " in text

    from PIL import Image

    assert result["plots"] == [str(out / "curves_methods.png")]
    assert Image.open(out / "curves_methods.png").size[0] > 1000


def test_every_variant_of_a_size_and_seed_trains_on_the_same_draw_and_all_on_one_test_draw(methods_run):
    out, _ = methods_run
    data = {}
    for v in METHODS:
        for n in SIZES:
            for s in SEEDS:
                recipe = yaml.safe_load((out / "runs" / v / f"n{n}" / f"seed{s}" / "recipe.yaml").read_text())
                data[v, n, s] = (recipe["data"], recipe["train"]["seed"], recipe["model"]["method"])
    for n in SIZES:
        for s in SEEDS:
            draws = {json.dumps(data[v, n, s][:2], sort_keys=True) for v in METHODS}
            assert len(draws) == 1
            assert data["ademvl", n, s][0]["limit"] == n and data["ademvl", n, s][0]["sample_seed"] == s
    assert data["ademvl", 6, 0][0] != data["ademvl", 6, 1][0]
    scored = set()
    for v in METHODS:
        for s in SEEDS:
            evaluated = json.loads((out / "runs" / v / "n12" / f"seed{s}" / "eval_test.json").read_text())
            scored.add(tuple(sorted(p["id"] for p in evaluated["predictions"])))
    assert len(scored) == 1 and len(next(iter(scored))) == 12


def test_a_second_invocation_reuses_every_finished_run(methods_run, monkeypatch, capsys):
    import ademvl.evaluation as evaluation
    import ademvl.training as training

    out, args = methods_run
    first = json.loads((out / "compare_results.json").read_text())
    calls = []
    monkeypatch.setattr(training, "train", lambda *a, **k: calls.append("train"))
    monkeypatch.setattr(evaluation, "evaluate", lambda *a, **k: calls.append("evaluate"))
    assert main(args) == 0
    second = json.loads((out / "compare_results.json").read_text())
    assert calls == []
    assert len(second["rows"]) == len(first["rows"]) and all(r["reused"] for r in second["rows"])
    assert [r["overall"] for r in second["rows"]] == [r["overall"] for r in first["rows"]]
    assert second["points"] == first["points"]
    assert "20 runs (0 tuned now)" in capsys.readouterr().out


def test_a_run_with_other_settings_is_refused_before_any_work(methods_run, capsys):
    out, args = methods_run
    results = (out / "compare_results.json").read_bytes()
    adapter = out / "runs" / "memvp" / "n6" / "seed0" / "adapter"
    stamp = adapter.stat().st_mtime_ns
    assert main(args + ["--lr", "0.02"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ademvl compare: error: ")
    assert "with other settings" in err[0] and "--retrain" in err[0] and "19 more run(s)" in err[0]
    assert (out / "compare_results.json").read_bytes() == results and adapter.stat().st_mtime_ns == stamp


def test_ablations_run_side_by_side_with_their_own_settings(fixtures):
    out = fixtures[0] / "ablations"
    assert main(args_for(fixtures, out, "--variants", "ablations", "--train-questions", "6", "--seeds", "3",
                         "--no-floor", "--best-alpha", "0.5", "--min-steps", "4")) == 0
    result = json.loads((out / "compare_results.json").read_text())
    rows = {r["variant"]: r for r in result["rows"]}
    assert list(rows) == ["ademvl", "ademvl-no-cls", "ademvl-single-scale", "ademvl-no-drop", "ademvl-no-fusion",
                          "ademvl-best-alpha-beta"]
    recipes = {v: yaml.safe_load((out / "runs" / v / "n6" / "seed3" / "recipe.yaml").read_text()) for v in rows}
    config = {v: recipe["model"]["method_config"] for v, recipe in recipes.items()}
    assert config["ademvl"] == {"scales": [16, 4]}
    # 6 questions in batches of 4 are 2 steps an epoch: --min-steps 4 makes it 2 epochs
    assert {recipe["train"]["epochs"] for recipe in recipes.values()} == {2} and rows["ademvl"]["epochs"] == 2
    assert config["ademvl-single-scale"]["scales"] == [16] and config["ademvl-no-drop"]["gamma"] == 0.0
    assert config["ademvl-best-alpha-beta"]["alpha"] == 0.5 and config["ademvl-best-alpha-beta"]["beta"] == 0.01
    assert rows["ademvl-no-cls"]["extra_tokens"] == 0 and rows["ademvl-no-fusion"]["extra_tokens"] == 1
    assert rows["ademvl-no-drop"]["trainable"] == rows["ademvl"]["trainable"]
    trainable = {v: r["trainable"] for v, r in rows.items()}
    assert trainable["ademvl-no-fusion"] < trainable["ademvl-single-scale"] < trainable["ademvl"]
    text = (out / "compare_results.md").read_text()
    assert "not judged: every point needs at least two seeds" in text
    assert result["plots"] == [str(out / "curves_ablations.png")]


def test_min_steps_gives_small_sizes_more_epochs():
    from ademvl.compare.run import CompareConfig, _run_config
    from ademvl.demo import DemoConfig

    cfg = CompareConfig(min_steps=40, pipeline=DemoConfig(batch_size=16, epochs=1))
    assert [_run_config(cfg, n, 0).epochs for n in (250, 500, 640, 6000)] == [3, 2, 1, 1]  # 16, 32, 40, 375 steps
    assert _run_config(CompareConfig(), 250, 2).epochs == 1 and _run_config(CompareConfig(), 250, 2).seed == 2


@pytest.mark.parametrize("extra, message", [
    (["--variants", "methods,nope"], "unknown variant 'nope'"),
    (["--seeds", "0,-1"], "argument --seeds: seeds must be ≥ 0, got -1"),
    (["--train-questions", "250,0"], "argument --train-questions: must be at least 1, got 0"),
    (["--best-alpha", "0"], "argument --best-alpha: must be a positive finite number"),
    (["--min-steps", "x"], "argument --min-steps: expected step count (an integer ≥ 0), got 'x'"),
])
def test_bad_options_are_one_line(fixtures, capsys, extra, message):
    out = fixtures[0] / "bad"
    try:
        code = main(args_for(fixtures, out, *extra))
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
    assert not out.exists()


def test_runs_recorded_elsewhere_join_the_report(methods_run, fixtures):
    """--add-runs: another comparison's compare_results.csv (here the methods run's) reported with this one's
    runs, its points unchanged; the union of variants and sizes in the tables and curves."""
    first_out, _ = methods_run
    first = json.loads((first_out / "compare_results.json").read_text())
    out = fixtures[0] / "added"
    assert main(args_for(fixtures, out, "--variants", "ademvl", "--train-questions", "18", "--seeds", "0,1",
                         "--no-floor", "--add-runs", str(first_out / "compare_results.csv"))) == 0
    result = json.loads((out / "compare_results.json").read_text())
    assert result["variants"] == METHODS and result["sizes"] == [6, 12, 18]
    assert sum(not r["reused"] for r in result["rows"]) == 2 and len(result["rows"]) == 22
    points = {(p["variant"], p["size"]): p for p in result["points"]}
    for p in first["points"]:
        mine = points[p["variant"], p["size"]]
        for name in ("overall", "yes/no", "color", "yes/no balanced"):
            assert mine[name] == pytest.approx(p[name], nan_ok=True)
    assert ("ademvl", 18) in points and ("bottleneck", 18) not in points
    assert "| variant | 6 | 12 | 18 |" in (out / "compare_results.md").read_text()
    with open(out / "compare_results.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 22


def _bad_table(fixtures, methods_run, name, edit):
    with open(methods_run[0] / "compare_results.csv") as handle:
        lines = list(csv.DictReader(handle))
    columns = list(lines[0])
    edit(lines, columns)
    path = fixtures[0] / name
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(lines)
    return path


@pytest.mark.parametrize("name, edit, size, message", [
    ("other_draw.csv", lambda lines, columns: lines[3].update(test_questions="99"), "18",
     "was scored on 99 test questions of seed 0, this comparison on 12 of seed 0"),
    ("no_draw.csv", lambda lines, columns: columns.remove("test_seed"), "18", "no column test_seed"),
    ("bad_cell.csv", lambda lines, columns: lines[0].update(overall="high"), "18",
     "line 2: column 'overall' holds 'high'"),
    ("twice.csv", lambda lines, columns: None, "6", "ademvl n=6 seed=0 is there twice"),
    ("word_answers.csv", lambda lines, columns: lines[3].update(answer_style="word"), "18",
     "was tuned on word answers, this comparison on rationale answers"),
    ("before_answer_styles.csv", lambda lines, columns: columns.remove("answer_style"), "18",
     "was tuned on word answers"),  # a table written before the option holds word-answer runs
    ("other_tower.csv", lambda lines, columns: lines[3].update(backbones="0123456789abcdef"), "18",
     "was tuned on other backbone weights (0123456789abcdef"),
])
def test_added_runs_that_do_not_compare_are_refused_before_any_work(methods_run, fixtures, capsys, name, edit,
                                                                     size, message):
    table = _bad_table(fixtures, methods_run, name, edit)
    out = fixtures[0] / f"refused-{name}"
    code = main(args_for(fixtures, out, "--variants", "ademvl", "--train-questions", size, "--seeds", "0",
                         "--no-floor", "--add-runs", str(table)))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
    assert not (out / "runs").exists() and not (out / "compare_results.json").exists()


def test_a_table_written_before_answer_styles_joins_a_word_answer_comparison(methods_run, fixtures):
    table = _bad_table(fixtures, methods_run, "old.csv", lambda lines, columns: columns.remove("answer_style"))
    out = fixtures[0] / "old-word"
    assert main(args_for(fixtures, out, "--variants", "ademvl", "--train-questions", "18", "--seeds", "0",
                         "--no-floor", "--answer-style", "word", "--add-runs", str(table))) == 0
    with open(out / "compare_results.csv") as handle:
        styles = [line["answer_style"] for line in csv.DictReader(handle)]
    assert len(styles) == 21 and set(styles) == {"word"}


def test_every_run_records_the_backbone_weights_it_was_tuned_on(methods_run, fixtures):
    """One fingerprint of the LLM and tower weights for every run, in the rows, the table and the report;
    a table written before the column joins as it is."""
    from ademvl.demo.tuning import backbones_digest

    out, _ = methods_run
    _, llm, vision, _ = fixtures
    digest = backbones_digest(llm, vision)
    result = json.loads((out / "compare_results.json").read_text())
    assert len(digest) == 16 and result["backbones"] == digest
    assert {r["backbones"] for r in result["rows"]} == {digest}
    assert f"backbone weights {digest}" in (out / "compare_results.md").read_text()
    table = _bad_table(fixtures, methods_run, "before_backbones.csv", lambda lines, columns: columns.remove("backbones"))
    joined = fixtures[0] / "before-backbones"
    assert main(args_for(fixtures, joined, "--variants", "ademvl", "--train-questions", "18", "--seeds", "0",
                         "--no-floor", "--add-runs", str(table))) == 0
    assert len(json.loads((joined / "compare_results.json").read_text())["rows"]) == 21


def test_a_run_tuned_on_other_backbone_weights_is_refused_before_any_work(methods_run, capsys):
    """A run directory copied from a machine whose tower build came out otherwise is not this run."""
    out, args = methods_run
    record_path = out / "runs" / "lavin" / "n12" / "seed1" / "run_result.json"
    record = json.loads(record_path.read_text())
    results = (out / "compare_results.json").read_bytes()
    record_path.write_text(json.dumps({**record, "backbones": "feedfacefeedface"}))
    try:
        assert main(args) == 2
    finally:
        record_path.write_text(json.dumps(record))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tuned on other backbone weights (feedfacefeedface" in err[0] and "--retrain" in err[0]
    assert (out / "compare_results.json").read_bytes() == results
