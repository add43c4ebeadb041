import json

import pytest

from ademvl.data import VLExample, load_easyvqa, normalize_answer, question_type, score_exact_match


def _fixture(tmp_path, png_writer, n_images=10):
    d = tmp_path / "easy"
    qs = []
    for iid in range(n_images):
        png_writer(d / "train" / "images" / f"{iid}.png", (iid * 20, 0, 0), (64, 64))
        qs += [[f"what color is shape {iid}?", "red", iid], [f"is there a circle {iid}?", "yes", iid]]
    (d / "train").mkdir(parents=True, exist_ok=True)
    (d / "train" / "questions.json").write_text(json.dumps(qs))
    png_writer(d / "test" / "images" / "0.png")
    (d / "test" / "questions.json").write_text(json.dumps([["what is the red shape?", "circle", 0]]))
    return d


def test_fixture_split_disjoint_and_deterministic(tmp_path, png_writer):
    d = _fixture(tmp_path, png_writer)
    tr = load_easyvqa("train", data_dir=d, val_fraction=0.3, seed=1)
    va = load_easyvqa("val", data_dir=d, val_fraction=0.3, seed=1)
    assert len({e.meta["image_id"] for e in va}) == 3 and len(va) == 6 and len(tr) == 14
    assert not {e.meta["image_id"] for e in tr} & {e.meta["image_id"] for e in va}
    assert {e.id for e in tr} | {e.id for e in va} == {f"train_{i}" for i in range(20)}
    assert [e.id for e in load_easyvqa("val", data_dir=d, val_fraction=0.3, seed=1)] == [e.id for e in va]
    other = {e.meta["image_id"] for e in load_easyvqa("val", data_dir=d, val_fraction=0.3, seed=2)}
    assert len(other) == 3  # a different seed still gives 3 images (possibly different ones)
    (te,) = load_easyvqa("test", data_dir=d)
    assert te.id == "test_0" and te.prompt == "Question: what is the red shape?\nAnswer:" and te.answer == "circle"
    assert te.image == str(d / "test" / "images" / "0.png") and te.meta["qtype"] == "shape"
    assert len(load_easyvqa("train", data_dir=d, limit=5)) == 5


def test_unknown_split(tmp_path, png_writer):
    with pytest.raises(ValueError, match="'dev'"):
        load_easyvqa("dev", data_dir=_fixture(tmp_path, png_writer))


@pytest.mark.parametrize(
    "q,a,t",
    [("is there a circle?", "no", "yes/no"), ("what color is it?", "teal", "color"),
     ("what shape is it?", "triangle", "shape"), ("does it contain red?", "Yes", "yes/no")],
)
def test_question_type(q, a, t):
    assert question_type(q, a) == t


@pytest.mark.parametrize(
    "raw,norm", [(" Circle.", "circle"), ("Yes, it is", "yes"), ("", ""), (None, ""), ("RED!", "red"), ("no", "no")]
)
def test_normalize(raw, norm):
    assert normalize_answer(raw) == norm


def test_exact_match_by_type():
    exs = [
        VLExample("1", "", "yes", None, {"qtype": "yes/no"}),
        VLExample("2", "", "no", None, {"qtype": "yes/no"}),
        VLExample("3", "", "red", None, {"qtype": "color"}),
        VLExample("4", "", "circle", None, {"qtype": "shape"}),
        VLExample("5", "", "blue", None, {"qtype": "color"}),
    ]
    preds = {"1": "Yes.", "2": "yes", "3": " Red", "4": "circle shape"}  # 5 missing -> wrong
    s = score_exact_match(preds, exs)
    assert s["n"] == 5 and s["overall"] == pytest.approx(60.0)
    assert s["by_type"] == {"color": 50.0, "shape": 100.0, "yes/no": 50.0}
    assert s["n_by_type"] == {"color": 2, "shape": 1, "yes/no": 2}


def test_real_package_counts_and_disjointness():
    pytest.importorskip("easy_vqa")
    tr, va, te = load_easyvqa("train"), load_easyvqa("val"), load_easyvqa("test")
    assert len(tr) + len(va) == 38575 and len(te) == 9673
    tr_img, va_img = {e.meta["image_id"] for e in tr}, {e.meta["image_id"] for e in va}
    assert len(tr_img) + len(va_img) == 4000 and len(va_img) == 400 and not tr_img & va_img
    assert len({e.meta["image_id"] for e in te}) == 1000
    assert len({e.id for e in tr + va + te}) == 38575 + 9673
    assert {e.meta["qtype"] for e in tr + va + te} == {"yes/no", "color", "shape"}
    assert {e.answer for e in te} <= {"circle", "green", "red", "gray", "yes", "teal", "black",
                                       "rectangle", "yellow", "triangle", "brown", "blue", "no"}
    from ademvl.data import load_image

    im = load_image(va[0].image, va[0].id)
    assert im.size == (64, 64) and im.mode == "RGB"
