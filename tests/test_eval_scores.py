"""Scores from planted answers: the ScienceQA table matches a hand count, the JSON keeps every
prediction, COCO metrics are exactly score_captions', easy-VQA exact match by type."""
import json

import pytest

from ademvl.data import load_dataset, score_captions
from ademvl.evaluation import evaluate, generation
from tiny_eval import make_coco, make_scienceqa

# pid → generated text; correct answers: 10 B, 11 A, 12 C, 13 A, 14 B
PLANTED_SQA = {
    "10": "The answer is B.",    # NAT IMG TXT G1-6   correct
    "11": "The answer is B.",    # SOC NO G7-12       wrong letter
    "12": "C",                   # LAN TXT G1-6       correct (bare letter)
    "13": "I think it is ice",   # NAT IMG G7-12      no letter → wrong
    "14": "The answer is (B)",   # SOC TXT G7-12      correct
}
HAND_TABLE = {"NAT": 50.0, "SOC": 50.0, "LAN": 100.0, "TXT": 100.0, "IMG": 50.0, "NO": 0.0,
              "G1-6": 100.0, "G7-12": 33.33, "Average": 60.0}


def plant(monkeypatch, answers):
    calls = []

    def fake(model, tokenizer, image_processor, examples, batch_size=8, max_new_tokens=32, progress=True, **kw):
        calls.append({"ids": [ex.id for ex in examples], "batch_size": batch_size, "max_new_tokens": max_new_tokens})
        return {ex.id: answers[ex.id] for ex in examples}

    monkeypatch.setattr(generation, "generate_answers", fake)
    return calls


def test_scienceqa_table_and_json(tmp_path, monkeypatch):
    examples = load_dataset("scienceqa", root=make_scienceqa(tmp_path / "sqa"), split="test")
    calls = plant(monkeypatch, PLANTED_SQA)
    result = evaluate(None, None, None, "scienceqa", examples, batch_size=3, output=tmp_path / "out.json")
    assert calls == [{"ids": ["10", "11", "12", "13", "14"], "batch_size": 3, "max_new_tokens": 32}]
    assert result["metrics"] == HAND_TABLE
    saved = json.loads((tmp_path / "out.json").read_text())
    assert saved["metrics"] == HAND_TABLE and saved["n"] == 5
    records = {r["id"]: r for r in saved["predictions"]}
    assert set(records) == set(PLANTED_SQA)
    assert records["10"] == {"id": "10", "generated": "The answer is B.", "parsed": "B", "answer": "B", "correct": True}
    assert records["13"]["parsed"] is None and records["13"]["correct"] is False
    assert records["11"]["parsed"] == "B" and records["11"]["answer"] == "A" and not records["11"]["correct"]
    # Recount every column from the saved predictions alone.
    by_id = {ex.id: ex.meta for ex in examples}
    def column(meta):
        cols = {"natural science": "NAT", "social science": "SOC", "language science": "LAN"}[meta["subject"]]
        grade = int(meta["grade"].removeprefix("grade"))
        return [cols, "G1-6" if grade <= 6 else "G7-12", "Average"] + (["TXT"] if meta["hint"] else []) + \
            (["IMG"] if meta["has_image"] else []) + ([] if meta["hint"] or meta["has_image"] else ["NO"])
    hits, totals = {}, {}
    for r in saved["predictions"]:
        for c in column(by_id[r["id"]]):
            totals[c] = totals.get(c, 0) + 1
            hits[c] = hits.get(c, 0) + r["correct"]
    assert {c: round(100 * hits[c] / totals[c], 2) for c in totals} == saved["metrics"]
    assert "NAT" in result["table"] and "33.33" in result["table"] and "60.00" in result["table"]


def test_coco_metrics_equal_score_captions(tmp_path, monkeypatch):
    karpathy, images = make_coco(tmp_path / "coco")
    examples = load_dataset("coco", karpathy_json=karpathy, image_root=images, split="test")
    planted = {"73": "A red square.", "74": "a blue tile", "75": "a dog on a sofa"}
    plant(monkeypatch, planted)
    result = evaluate(None, None, None, "coco", examples, output=tmp_path / "coco.json")
    expected = score_captions(planted, {ex.id: ex.meta["refs"] for ex in examples})
    assert result["metrics"] == expected and expected["CIDEr"] > 0
    saved = json.loads((tmp_path / "coco.json").read_text())
    assert {r["id"]: r["generated"] for r in saved["predictions"]} == planted
    assert saved["predictions"][1]["refs"] == ["A blue square.", "Something blue.", "A blue tile."]


def test_coco_train_split_is_refused(tmp_path, monkeypatch):
    karpathy, images = make_coco(tmp_path / "coco")
    examples = load_dataset("coco", karpathy_json=karpathy, image_root=images, split="train")
    plant(monkeypatch, {ex.id: "x" for ex in examples})
    with pytest.raises(ValueError, match="without reference captions"):
        evaluate(None, None, None, "coco", examples)


def test_easyvqa_exact_match_by_type(tmp_path, monkeypatch):
    data = tmp_path / "easyvqa"
    (data / "test" / "images").mkdir(parents=True)
    questions = [["What color is the shape?", "red", 0], ["What shape is in the image?", "circle", 1],
                 ["Is there a circle?", "yes", 1], ["Is there a triangle?", "no", 0]]
    (data / "test" / "questions.json").write_text(json.dumps(questions))
    examples = load_dataset("easyvqa", split="test", data_dir=data)
    plant(monkeypatch, {"test_0": "Red.", "test_1": "triangle", "test_2": "yes", "test_3": "yes"})
    result = evaluate(None, None, None, "easyvqa", examples)
    assert result["metrics"]["overall"] == 50.0
    assert result["metrics"]["by_type"] == {"color": 100.0, "shape": 0.0, "yes/no": 50.0}
    assert [r["correct"] for r in result["predictions"]] == [True, False, True, False]


def test_llava_instruct_keeps_predictions(tmp_path, monkeypatch):
    path = tmp_path / "llava.json"
    path.write_text(json.dumps([{"id": "a", "conversations": [{"from": "human", "value": "Hi?"},
                                                               {"from": "gpt", "value": "Hello."}]}]))
    examples = load_dataset("llava_instruct", json_path=path)
    plant(monkeypatch, {"a_0": "Hey."})
    result = evaluate(None, None, None, "llava_instruct", examples)
    assert result["metrics"] == {}
    assert result["predictions"] == [{"id": "a_0", "prompt": "Instruction: Hi?\nResponse:", "generated": "Hey.",
                                      "reference": "Hello."}]


def test_unknown_dataset_and_empty_input():
    with pytest.raises(ValueError, match="unknown dataset 'mme'"):
        evaluate(None, None, None, "mme", [])
    with pytest.raises(ValueError, match="no coco examples"):
        evaluate(None, None, None, "coco", [])
