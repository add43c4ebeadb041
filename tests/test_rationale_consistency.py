"""Whether a rationale answer's verdict follows from the attribute it names ("triangle, so no" to "is there a
circle?"): counted by the scorer, carried through `ademvl compare`'s tables and CSV, and recounted from the
saved predictions when a finished run is reused."""
import json

import pytest

from ademvl.compare import report, stats
from ademvl.data import VLExample, score_exact_match
from ademvl.data.easyvqa import rationale_follows
from ademvl.demo.tuning import rescored


@pytest.mark.parametrize("question, prediction, follows", [
    ("is there a circle?", "triangle, so no", True),
    ("is there a circle?", "triangle, so yes", False),
    ("is there a circle?", "circle, so yes", True),
    ("is there not a circle?", "circle, so yes", False),        # negated: the circle is there, so "no"
    ("is there not a circle?", "rectangle, so yes", True),
    ("is no red shape present?", "red, so no", True),
    ("does the image not contain a gray shape?", "Grey, so no.", True),  # the two spellings are one colour
    ("is there a blue shape?", "green, so yes", False),
    ("is there a circle?", "no", None),                         # a bare word: nothing to check
    ("is there a circle?", "green, so no", None),               # names a colour, the question asks a shape
    ("is there a circle?", "triangle, so maybe", None),
    ("what shape is in the image?", "circle, so yes", None),    # the question names no value
])
def test_a_verdict_follows_from_the_named_attribute_or_not(question, prediction, follows):
    assert rationale_follows(question, prediction) is follows


def _yes_no(i, question, answer):
    return VLExample(str(i), "", answer, None, {"qtype": "yes/no", "question": question, "asks_about": "shape",
                                                "negated": "not" in question})


def test_the_scorer_counts_contradicting_verdicts_only_among_rationales():
    exs = [_yes_no(0, "is there a circle?", "triangle, so no"), _yes_no(1, "is there a circle?", "circle, so yes"),
           _yes_no(2, "is there not a circle?", "circle, so no"), _yes_no(3, "is there a triangle?", "triangle, so no")]
    preds = {"0": "triangle, so no", "1": "triangle, so yes", "2": "circle, so no", "3": "no"}
    scored = score_exact_match(preds, exs)["yes_no"]
    assert scored["rationales"] == 3 and scored["contradicting"] == pytest.approx(100 / 3)  # only "1" contradicts
    assert "contradicting" not in score_exact_match({k: "no" for k in preds}, exs)["yes_no"]  # word answers


def _run(variant, seed, contradicting):
    yes_no = {"balanced": 90.0} if contradicting is None else {"balanced": 90.0, "contradicting": contradicting}
    return {"variant": variant, "method": "ademvl", "size": 6000, "seed": seed, "test_questions": 1000,
            "test_seed": 0, "answer_style": "rationale", "overall": 95.0, "by_type": {"yes/no": 95.0},
            "yes_no": yes_no, "trainable": 10, "extra_tokens": 1, "train_s": 1.0, "eval_s": 1.0}


def test_compare_reports_the_share_and_carries_it_through_its_run_table(tmp_path):
    rows = [_run("ademvl", s, c) for s, c in enumerate((2.0, 6.0))] + [_run("memvp", s, None) for s in (0, 1)]
    path = tmp_path / "runs.csv"
    path.write_text(report.runs_csv(rows))
    again = report.read_runs(path)
    assert [r["yes_no"].get("contradicting") for r in again] == [2.0, 6.0, None, None]
    points = stats.curves(again, ["ademvl", "memvp"], [6000])
    result = {"config": {"seeds": [0, 1], "epochs": 1, "batch_size": 16, "lr": 4e-3, "test_seed": 0,
                         "question_weights": {"yes/no": 2.0}, "answer_style": "rationale"},
              "variants": ["ademvl", "memvp"], "sizes": [6000], "test_questions": 1000, "reference": "ademvl",
              "rows": again, "points": points, "floor": None, "separation": stats.separation(points)}
    text = report.markdown(result)
    assert "verdicts that contradict the model's own rationale" in text
    assert "| ademvl | 4.0 ± 2.8 |" in text and "| memvp | – |" in text
    only_memvp = [r for r in again if r["variant"] == "memvp"]
    points = stats.curves(only_memvp, ["memvp"], [6000])
    assert "contradict" not in report.markdown({**result, "variants": ["memvp"], "rows": only_memvp,
                                                "points": points, "separation": stats.separation(points)})


def test_a_reused_run_is_scored_again_from_its_saved_predictions(tmp_path):
    """A run recorded before the count gets it from its predictions; without them it stays as recorded."""
    exs = [_yes_no(0, "is there a circle?", "triangle, so no"), _yes_no(1, "is there a circle?", "triangle, so no")]
    recorded = {"overall": 50.0, "by_type": {"yes/no": 50.0}, "yes_no": {"balanced": 50.0}, "train_s": 3.0}
    saved = tmp_path / "eval_test.json"
    saved.write_text(json.dumps({"predictions": [{"id": "0", "generated": "triangle, so no"},
                                                 {"id": "1", "generated": "triangle, so yes"}]}))
    row = rescored(recorded, saved, exs)
    assert row["overall"] == 50.0 and row["train_s"] == 3.0
    assert row["yes_no"]["contradicting"] == 50.0 and row["yes_no"]["rationales"] == 2
    assert rescored(recorded, tmp_path / "gone.json", exs) == recorded
    assert rescored(recorded, saved, exs + [_yes_no(2, "is there a circle?", "no")]) == recorded  # not covered
