"""easy-VQA's question facets and the balanced yes/no accuracy, on the real questions of the package."""
from collections import Counter

import pytest

from ademvl.data import load_easyvqa, score_exact_match
from ademvl.data.easyvqa import COLORS, SHAPES, question_facets

pytest.importorskip("easy_vqa")


@pytest.fixture(scope="module")
def test_split():
    return load_easyvqa("test")


def _phrasing(question: str) -> str:
    return " ".join("X" if w.strip("?") in COLORS | SHAPES else w for w in question.split())


def test_every_yes_no_phrasing_gets_one_facet_pair(test_split):
    facets_by_phrasing = {}
    for ex in test_split:
        if ex.meta["qtype"] != "yes/no":
            continue
        q = ex.meta["question"]
        about = "shape" if any(s in q for s in SHAPES) else "color"
        key = (_phrasing(q), about)
        facets_by_phrasing.setdefault(key, set()).add((ex.meta["asks_about"], ex.meta["negated"]))
    assert len(facets_by_phrasing) == 16  # 8 phrasings, each about a colour or a shape
    for (phrasing, about), seen in facets_by_phrasing.items():
        negated = " not " in phrasing or phrasing.startswith("is no ")
        assert seen == {(about, negated)}, phrasing
    assert question_facets("what color is the shape?", "red") == {"asks_about": "color", "negated": False}
    assert question_facets("what is the circle shape?", "circle")["asks_about"] == "shape"


def test_answers_read_off_the_phrasing_score_high_but_balance_at_fifty(test_split):
    yes_no = [ex for ex in test_split if ex.meta["qtype"] == "yes/no"]
    prior = {ex.id: "yes" if ex.meta["negated"] else "no" for ex in yes_no}  # what the label prior says
    scored = score_exact_match(prior, yes_no)
    assert scored["overall"] > 80  # the prior alone: why the raw yes/no accuracy hid a blind model
    assert scored["yes_no"]["balanced"] == pytest.approx(50.0)
    assert set(scored["yes_no"]["strata"].values()) == {0.0, 100.0}
    truth = {ex.id: ex.answer for ex in yes_no}
    assert score_exact_match(truth, yes_no)["yes_no"] == {
        "asks_color": 100.0, "asks_shape": 100.0, "balanced": 100.0,
        "strata": {k: 100.0 for k in scored["yes_no"]["strata"]}}
    counts = Counter((ex.meta["asks_about"], ex.meta["negated"], ex.answer) for ex in yes_no)
    assert len(counts) == 8 and min(counts.values()) > 100
