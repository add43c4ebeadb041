"""Learning-curve statistics and report of `ademvl compare` on made-up runs (no model)."""
import pytest

from ademvl.compare import report, stats


def run(variant, size, seed, overall, yes_no=None, trainable=100):
    return {"variant": variant, "method": variant.split("-")[0], "size": size, "seed": seed, "overall": overall,
            "by_type": {"yes/no": overall if yes_no is None else yes_no, "color": 99.0}, "trainable": trainable,
            "extra_tokens": 1, "train_s": size / 10, "eval_s": 30.0, "test_questions": 3000, "load_average": 0.2}


# At 250 questions ademvl (60, 62, 64) and memvp (50, 51, 52) stand apart; at 6,000 they overlap.
ROWS = [run("ademvl", 250, s, v) for s, v in enumerate((60.0, 62.0, 64.0))] + \
       [run("memvp", 250, s, v) for s, v in enumerate((50.0, 51.0, 52.0))] + \
       [run("ademvl", 6000, s, v) for s, v in enumerate((87.0, 88.0, 89.0))] + \
       [run("memvp", 6000, s, v) for s, v in enumerate((86.5, 87.5, 88.5))]


def test_mean_and_sample_std_per_variant_and_size():
    points = {(p["variant"], p["size"]): p for p in stats.curves(ROWS, ["ademvl", "memvp"], [250, 6000])}
    assert points["ademvl", 250]["overall"] == pytest.approx((62.0, 2.0))
    assert points["memvp", 250]["overall"] == pytest.approx((51.0, 1.0))
    assert points["ademvl", 250]["seeds"] == [0, 1, 2] and points["memvp", 6000]["train_s"] == pytest.approx(600.0)
    assert stats.mean_std([5.0]) == (5.0, None)


def test_separation_finds_the_low_data_regime():
    points = stats.curves(ROWS, ["ademvl", "memvp"], [250, 6000])
    low, high = stats.separation(points)
    assert low["size"] == 250 and low["apart"] == [["ademvl", "memvp"]] and low["spread"] == pytest.approx(11.0)
    assert low["vs_reference"]["memvp"] == {"delta": pytest.approx(-11.0), "apart": True}
    assert high["apart"] == [] and high["max_std"] == pytest.approx(1.0)
    assert stats.regime([low, high]) == ("variants differ by more than their seed spread at 250 (1 of 1 pairs) "
                                         "training questions")
    assert "no pair" in stats.regime([high])


def test_one_seed_is_not_judged():
    points = stats.curves([r for r in ROWS if r["seed"] == 0], ["ademvl", "memvp"], [250])
    (row,) = stats.separation(points)
    assert row["pairs"] == 0 and stats.regime([row]) == "not judged: every point needs at least two seeds"
    (alone,) = stats.separation([p for p in points if p["variant"] == "memvp"])
    assert stats.regime([alone]) == "not judged: it takes at least two variants"


def test_markdown_and_plot(tmp_path):
    points = stats.curves(ROWS, ["ademvl", "memvp"], [250, 6000])
    floor = {"overall": 40.0, "by_type": {"yes/no": 50.0, "color": 10.0}}
    result = {"config": {"seeds": [0, 1, 2], "epochs": 1, "batch_size": 16, "lr": 4e-3, "test_seed": 0,
                         "question_weights": {"yes/no": 2.0, "color": 1.0, "shape": 1.0}},
              "variants": ["ademvl", "memvp"], "sizes": [250, 6000], "test_questions": 3000, "reference": "ademvl",
              "rows": ROWS, "points": points, "floor": floor, "separation": stats.separation(points)}
    text = report.markdown(result)
    assert "| ademvl | 62.0 ± 2.0 | 88.0 ± 1.0 |" in text and "| memvp | 51.0 ± 1.0 | 87.5 ± 1.0 |" in text
    assert "| 250 | 11.0 | 2.0 | 1 / 1 | memvp -11.0* |" in text
    assert "| 6,000 | 0.5 | 1.0 | 0 / 1 | memvp -0.5 |" in text
    assert "| ademvl | full ADEM-VL" in text and "| 100.0 |" in text  # train s per 1,000 questions: size/10 s
    assert "Floor (frozen LLM, no image): 40.0 overall, yes/no 50.0, color 10.0." in text
    from PIL import Image

    path = report.plot_curves(points, ["ademvl", "memvp"], tmp_path / "curves.png", "test", floor)
    assert Image.open(path).size == (int(4.0 * 3 * 110), int(3.8 * 110))  # overall, yes/no, color: no shape panel


def test_balanced_yes_no_gets_its_table_and_panel_only_where_runs_scored_it(tmp_path):
    rows = [{**r, "yes_no": {"balanced": 50.0 + r["seed"]}} for r in ROWS]
    points = stats.curves(rows, ["ademvl", "memvp"], [250, 6000])
    assert points[0][stats.YES_NO_BALANCED] == pytest.approx((51.0, 1.0))
    result = {"config": {"seeds": [0, 1, 2], "epochs": 1, "batch_size": 16, "lr": 4e-3, "test_seed": 0,
                         "question_weights": {"yes/no": 2.0}, "balance_within": ["asks_about", "answer"]},
              "variants": ["ademvl", "memvp"], "sizes": [250, 6000], "test_questions": 3000, "reference": "ademvl",
              "rows": rows, "points": points, "floor": None, "separation": stats.separation(points)}
    text = report.markdown(result)
    assert "#### Accuracy: yes/no balanced" in text and "| ademvl | 51.0 ± 1.0 | 51.0 ± 1.0 |" in text
    assert "each spread evenly over asks_about, answer" in text
    assert "yes/no balanced" not in report.markdown({**result, "rows": ROWS,
                                                     "points": stats.curves(ROWS, ["ademvl", "memvp"], [250, 6000])})
    from PIL import Image

    path = report.plot_curves(points, ["ademvl", "memvp"], tmp_path / "curves.png", "test")
    assert Image.open(path).size == (int(4.0 * 4 * 110), int(3.8 * 110))  # overall, yes/no, color, balanced


def test_one_training_size_is_drawn_as_bars(tmp_path, monkeypatch):
    """A comparison at one size has no curve to draw: one bar per variant, its height the mean."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    rows = [r for r in ROWS if r["size"] == 250]
    points = stats.curves(rows, ["ademvl", "memvp"], [250])
    drawn, real_bar = [], Axes.bar
    monkeypatch.setattr(Axes, "bar", lambda self, x, height, *a, **k: drawn.append((k.get("label"), height))
                        or real_bar(self, x, height, *a, **k))
    path = report.plot_curves(points, ["ademvl", "memvp"], tmp_path / "bars.png", "test")
    overall = {p["variant"]: p["overall"][0] for p in points}
    assert drawn[:2] == [("ademvl", overall["ademvl"]), ("memvp", overall["memvp"])]
    assert path.is_file()
