import json
import shutil

import pytest

from ademvl.data import DEFAULT_CAPTION_PROMPT, load_coco_captions, score_captions

KARPATHY = {
    "dataset": "coco",
    "images": [
        {"filepath": "train2014", "filename": "COCO_train2014_000000000009.jpg", "imgid": 0, "split": "train",
         "cocoid": 9, "sentences": [{"raw": "A plate of food. ", "tokens": []}, {"raw": "Food on a  table.", "tokens": []}]},
        {"filepath": "val2014", "filename": "COCO_val2014_000000000042.jpg", "imgid": 1, "split": "restval",
         "cocoid": 42, "sentences": [{"raw": "A dog runs.", "tokens": []}]},
        {"filepath": "val2014", "filename": "COCO_val2014_000000000073.jpg", "imgid": 2, "split": "val",
         "cocoid": 73, "sentences": [{"raw": "A red bus.", "tokens": []}, {"raw": "A bus on the street.", "tokens": []}]},
        {"filepath": "val2014", "filename": "COCO_val2014_000000000074.jpg", "imgid": 3, "split": "test",
         "cocoid": 74, "sentences": [{"raw": "Two cats sleep.", "tokens": []}, {"raw": "Cats on a bed.", "tokens": []},
                                     {"raw": "Sleeping cats.", "tokens": []}]},
    ],
}


@pytest.fixture
def karpathy(tmp_path):
    p = tmp_path / "dataset_coco.json"
    p.write_text(json.dumps(KARPATHY))
    return p


def test_karpathy_train_one_per_caption_restval_included(karpathy, tmp_path):
    exs = load_coco_captions(karpathy, tmp_path / "coco", "train")
    assert [e.id for e in exs] == ["9_0", "9_1", "42_0"]
    assert [e.answer for e in exs] == ["A plate of food.", "Food on a table.", "A dog runs."]
    assert exs[0].image == str(tmp_path / "coco" / "train2014" / "COCO_train2014_000000000009.jpg")
    assert exs[2].image == str(tmp_path / "coco" / "val2014" / "COCO_val2014_000000000042.jpg")
    assert all(e.prompt == DEFAULT_CAPTION_PROMPT for e in exs)


def test_karpathy_test_one_per_image_with_refs(karpathy, tmp_path):
    (e,) = load_coco_captions(karpathy, tmp_path, "test", prompt="Caption:")
    assert e.id == "74" and e.prompt == "Caption:"
    assert e.meta["refs"] == ["Two cats sleep.", "Cats on a bed.", "Sleeping cats."]
    (v,) = load_coco_captions(karpathy, tmp_path, "val")
    assert v.id == "73" and len(v.meta["refs"]) == 2


def test_unknown_split(karpathy, tmp_path):
    with pytest.raises(ValueError, match="'restval'"):
        load_coco_captions(karpathy, tmp_path, "restval")


def test_blip_formats(tmp_path):
    train = [
        {"caption": "A woman cutting a cake. ", "image": "val2014/COCO_val2014_000000522418.jpg", "image_id": "coco_522418"},
        {"caption": "A cake on a table.", "image": "val2014/COCO_val2014_000000522418.jpg", "image_id": "coco_522418"},
        {"caption": "A child with an umbrella.", "image": "val2014/COCO_val2014_000000184613.jpg", "image_id": "coco_184613"},
    ]
    test = [{"image": "val2014/COCO_val2014_000000391895.jpg", "caption": ["A man on a bike.", "A biker rides."]}]
    (tmp_path / "tr.json").write_text(json.dumps(train))
    (tmp_path / "te.json").write_text(json.dumps(test))
    tr = load_coco_captions(tmp_path / "tr.json", tmp_path / "img", "train")
    assert [e.id for e in tr] == ["522418_0", "522418_1", "184613_0"]
    assert tr[0].answer == "A woman cutting a cake."
    assert tr[0].image == str(tmp_path / "img" / "val2014" / "COCO_val2014_000000522418.jpg")
    (te,) = load_coco_captions(tmp_path / "te.json", tmp_path / "img", "test")
    assert te.id == "391895" and te.meta["refs"] == ["A man on a bike.", "A biker rides."]


def test_malformed_blip_entry(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps([{"image": "x.jpg"}]))
    with pytest.raises(ValueError, match="#0"):
        load_coco_captions(tmp_path / "bad.json", tmp_path, "train")


needs_cocoeval = pytest.mark.skipif(shutil.which("java") is None, reason="PTBTokenizer needs java")


@needs_cocoeval
def test_identical_caption_bleu4_is_100():
    pytest.importorskip("pycocoevalcap")
    s = score_captions({"1": "a man riding a horse on a beach"}, {"1": ["A man riding a horse on a beach."]})
    assert s["BLEU-4"] == pytest.approx(100.0, abs=1e-4)


@needs_cocoeval
def test_scores_match_pycocoevalcap_directly():
    pytest.importorskip("pycocoevalcap")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    refs = {
        "a": ["A man riding a horse.", "A person on a brown horse."],
        "b": ["Two dogs play in the grass.", "Dogs playing outside."],
        "c": ["A red bus on the street.", "A bus parked by a road."],
    }
    preds = {"a": "a man rides a horse", "b": "two dogs in the grass", "c": "a bus on a road", "extra": "ignored"}
    got = score_captions(preds, refs)
    tok = PTBTokenizer()
    g = tok.tokenize({k: [{"caption": c} for c in v] for k, v in refs.items()})
    r = tok.tokenize({k: [{"caption": preds[k]}] for k in refs})
    bleu, _ = Bleu(4).compute_score(g, r, verbose=0)
    cider, _ = Cider().compute_score(g, r)
    assert got["BLEU-4"] == pytest.approx(100 * bleu[3], rel=1e-9)
    assert got["CIDEr"] == pytest.approx(100 * cider, rel=1e-9)
    assert 0 < got["BLEU-4"] < 100 and got["CIDEr"] > 0


def test_missing_prediction_is_an_error():
    pytest.importorskip("pycocoevalcap")
    with pytest.raises(ValueError, match="without a prediction"):
        score_captions({}, {"1": ["a cat"]})


def test_import_error_message(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("pycocoevalcap"):
            raise ImportError("no")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match="pip install pycocoevalcap"):
        score_captions({"1": "x"}, {"1": ["x"]})
