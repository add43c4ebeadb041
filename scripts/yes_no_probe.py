"""P(yes) of a tuned adapter for every (image attribute, asked attribute) pair on easy-VQA test images.

A model that reads the image against the question shows a bright diagonal (high P(yes) where the asked
colour or shape is the one shown); one that answers from the phrasing shows flat rows (docs/results.md).
Usage: python scripts/yes_no_probe.py ADAPTER_DIR
"""
from __future__ import annotations

import argparse

import torch
from PIL import Image

from ademvl.data import load_easyvqa
from ademvl.evaluation.loading import load_for_eval
from ademvl.processing import VLProcessor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("adapter", help="an adapter directory (e.g. runs/demo/ademvl/adapter)")
    args = parser.parse_args()
    model, tokenizer, image_processor = load_for_eval(args.adapter)
    processor = VLProcessor.for_model(model, tokenizer, image_processor)
    shown = {"color": {}, "shape": {}}  # one test image per colour and per shape
    for ex in load_easyvqa("test"):
        if ex.meta["qtype"] in shown:
            shown[ex.meta["qtype"]].setdefault(ex.answer, ex.image)
    yes, no = tokenizer(" yes").input_ids[-1], tokenizer(" no").input_ids[-1]

    def p_yes(image: str, question: str) -> float:
        inputs = processor(images=[Image.open(image).convert("RGB")], text=[question])
        with torch.no_grad():
            logits = model(**inputs).logits[0, -1]
        return torch.softmax(logits[[yes, no]], -1)[0].item()

    for kind, template in (("color", "is there a {} shape?"), ("shape", "is there a {}?")):
        names = sorted(shown[kind])
        print(f"\nP(yes) for '{template}': rows = the {kind} shown, columns = the {kind} asked")
        print(" " * 10 + " ".join(f"{n[:6]:>6}" for n in names))
        for truth in names:
            print(f"{truth:>10}" + " ".join(f"{p_yes(shown[kind][truth], template.format(n)):6.2f}" for n in names))


if __name__ == "__main__":
    main()
