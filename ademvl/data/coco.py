"""COCO captions on the Karpathy split, and the papers' BLEU-4 / CIDEr.

Accepted annotation files:

* Karpathy's ``dataset_coco.json``: ``{"images": [{"filepath", "filename",
  "split" ∈ train/restval/val/test, "cocoid", "sentences": [{"raw", ...}]}]}``;
  the image is ``image_root/filepath/filename``; ``restval`` counts as train.
* BLIP's ``coco_karpathy_train.json``: ``[{"image", "caption": str, "image_id"}]``
  (one caption per entry) and ``coco_karpathy_{val,test}.json``:
  ``[{"image", "caption": [str, ...]}]``; the image is ``image_root/image``.
  These files hold one split each, so ``split`` only chooses the record shape.

Train → one record per caption (id ``"{cocoid}_{k}"``, k-th caption of that
image); val/test → one record per image (id ``"{cocoid}"``, ``answer`` = first
reference, ``meta["refs"]`` = all references).

Scores come from pycocoevalcap itself (PTBTokenizer → ``Bleu(4)``, ``Cider``),
the implementation every captioning paper reports, ×100.
"""
from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..official import protocol
from .example import VLExample
from .files import read_json
from .registry import DatasetSpec, OfficialProtocol, register

__all__ = ["DEFAULT_CAPTION_PROMPT", "load_coco_captions", "score_captions"]

DEFAULT_CAPTION_PROMPT = "Write a short caption for the image.\nResponse:"
_SPLITS = ("train", "val", "test")
_COCOID = re.compile(r"(\d+)\D*$")


def _cocoid_from(entry: Mapping, image: str) -> str:
    iid = entry.get("image_id")
    if iid is not None:
        m = re.search(r"\d+", str(iid))
        if m:
            return str(int(m.group()))
    stem = os.path.splitext(os.path.basename(image))[0]
    m = _COCOID.search(stem)
    if m is None:
        raise ValueError(f"COCO entry {image!r}: cannot derive an image id (no 'image_id', no digits in file name)")
    return str(int(m.group(1)))


def _read_entries(data, image_root: str, split: str, path: str):
    """Yield (cocoid, image_path, [captions]) for images of ``split`` in either format."""
    if isinstance(data, Mapping) and "images" in data:  # Karpathy dataset_coco.json
        wanted = {"train", "restval"} if split == "train" else {split}
        for i, img in enumerate(data["images"]):
            try:
                if img["split"] not in wanted:
                    continue
                cocoid = str(img.get("cocoid", img.get("imgid", i)))
                caps = [s["raw"] for s in img["sentences"]]
                file = os.path.join(image_root, img.get("filepath", ""), img["filename"])
            except (KeyError, TypeError) as e:
                raise ValueError(f"{path}: malformed image entry #{i} (missing {e})") from None
            yield cocoid, file, caps
    elif isinstance(data, list):  # BLIP coco_karpathy_{train,val,test}.json
        grouped: dict[str, tuple[str, list[str]]] = {}
        for i, e in enumerate(data):
            if not isinstance(e, Mapping) or "image" not in e or "caption" not in e:
                raise ValueError(f"{path}: malformed entry #{i} (needs 'image' and 'caption')")
            caps = e["caption"] if isinstance(e["caption"], list) else [e["caption"]]
            cocoid = _cocoid_from(e, e["image"])
            entry = grouped.setdefault(cocoid, (os.path.join(image_root, e["image"]), []))
            entry[1].extend(caps)
        for cocoid, (file, caps) in grouped.items():
            yield cocoid, file, caps
    else:
        raise ValueError(f"{path}: not a Karpathy dataset_coco.json nor a BLIP coco_karpathy list")


def load_coco_captions(
    karpathy_json, image_root, split: str, prompt: str = DEFAULT_CAPTION_PROMPT, limit: int | None = None
) -> list[VLExample]:
    """Load COCO Karpathy ``split`` (train/val/test) as :class:`VLExample` records.

    ``limit`` caps the number of images (not captions) taken, in file order.
    """
    if split not in _SPLITS:
        raise ValueError(f"unknown COCO split {split!r}; valid: {', '.join(_SPLITS)} (restval is part of train)")
    path = os.fspath(karpathy_json)
    data = read_json(path)
    out: list[VLExample] = []
    n_images = 0
    for cocoid, file, caps in _read_entries(data, os.fspath(image_root), split, path):
        if limit is not None and n_images >= limit:
            break
        caps = [" ".join(str(c).split()) for c in caps]
        caps = [c for c in caps if c]
        if not caps:
            continue
        n_images += 1
        if split == "train":
            for k, cap in enumerate(caps):
                out.append(VLExample(f"{cocoid}_{k}", prompt, cap, file, {"cocoid": cocoid}))
        else:
            out.append(VLExample(cocoid, prompt, caps[0], file, {"cocoid": cocoid, "refs": caps}))
    return out


def _pycocoevalcap():
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    except ImportError:
        raise ImportError(
            "caption scoring needs pycocoevalcap (and java): pip install pycocoevalcap"
        ) from None
    return Bleu, Cider, PTBTokenizer


def score_captions(preds: Mapping[str, str], refs: Mapping[str, list[str]]) -> dict[str, float]:
    """BLEU-4 and CIDEr (×100) of ``preds`` against ``refs``, over the ids of ``refs``.

    Both sides go through pycocoevalcap's PTBTokenizer (a java subprocess),
    then ``Bleu(4)`` (corpus-level BLEU-4) and ``Cider`` (corpus IDF from
    ``refs``). Every id of ``refs`` needs a prediction; extra ids are ignored.
    """
    Bleu, Cider, PTBTokenizer = _pycocoevalcap()
    ids = list(refs)
    if not ids:
        raise ValueError("score_captions: no references given")
    missing = [i for i in ids if i not in preds]
    if missing:
        raise ValueError(f"score_captions: {len(missing)} id(s) without a prediction, e.g. {missing[:3]}")
    for i in ids:
        if not refs[i]:
            raise ValueError(f"score_captions: id {i!r} has no reference captions")
    gts = {i: [{"caption": str(c)} for c in refs[i]] for i in ids}
    res = {i: [{"caption": str(preds[i] or "")}] for i in ids}
    tok = PTBTokenizer()
    gts_t, res_t = tok.tokenize(gts), tok.tokenize(res)
    bleu, _ = Bleu(4).compute_score(gts_t, res_t, verbose=0)
    cider, _ = Cider().compute_score(gts_t, res_t)
    return {"BLEU-4": 100.0 * float(bleu[3]), "CIDEr": 100.0 * float(cider)}


# --- registry entry ---------------------------------------------------------------------------------

@dataclass
class COCOOptions:
    """The recipe's `data.*` keys that `load_coco_captions` takes (None: the loader's default)."""

    split: str | None = None
    limit: int | None = None
    karpathy_json: str | None = None
    image_root: str | None = None  # folder holding train2014/ val2014/
    prompt: str | None = None  # default: DEFAULT_CAPTION_PROMPT


def evaluate_coco(answers, examples) -> dict:
    missing = [ex.id for ex in examples if not ex.meta.get("refs")]
    if missing:
        raise ValueError(f"COCO records without reference captions (load a val/test split): e.g. {missing[:3]}")
    refs = {ex.id: ex.meta["refs"] for ex in examples}
    metrics = score_captions(answers, refs)
    records = [{"id": ex.id, "image": ex.image, "generated": answers[ex.id], "refs": ex.meta["refs"]}
               for ex in examples]
    return {"metrics": metrics, "predictions": records}


def _official_prompt(ex: VLExample) -> VLExample:
    return dataclasses.replace(ex, prompt=protocol.CAPTION_PROMPT)


register(DatasetSpec(
    "coco", load_coco_captions, COCOOptions, scorer=evaluate_coco,
    max_new_tokens=32,  # a caption
    official=OfficialProtocol(max_new_tokens=20, prepare=_official_prompt, postprocess=protocol.official_caption),
))
