"""How well does the frozen demo LLM answer easy-VQA yes/no questions from a perfect *text*
description of the image? It bounds what a method that tunes no LLM weight can expect
(docs/demo.md). Usage: python scripts/demo_text_oracle.py [--n 300] [--chat]
"""
from __future__ import annotations

import argparse
import random
from collections import defaultdict

import torch
from tqdm import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

from ademvl.backbones.smollm2 import smollm2_path
from ademvl.data import load_easyvqa

FEW_SHOT = (
    "Image: a blue triangle\nQuestion: is there a triangle?\nAnswer: yes\n\n"
    "Image: a red circle\nQuestion: is there not a red shape?\nAnswer: no\n\n"
    "Image: a green rectangle\nQuestion: does the image contain a circle?\nAnswer: no\n\n"
)


def image_descriptions(test) -> dict:
    """image id → {"color": …, "shape": …}, read off the image's own colour and shape questions."""
    described = defaultdict(dict)
    for ex in test:
        if ex.meta["qtype"] in ("shape", "color"):
            described[ex.meta["image_id"]][ex.meta["qtype"]] = ex.answer
    return described


def prompt(description: dict, question: str, chat: bool) -> str:
    seen = f"a {description['color']} {description['shape']}"
    if chat:
        return (f"<|im_start|>user\nThe image shows {seen}. Question: {question} Answer yes or no.<|im_end|>\n"
                "<|im_start|>assistant\n")
    return FEW_SHOT + f"Image: {seen}\nQuestion: {question}\nAnswer:"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="yes/no test questions (seeded draw)")
    parser.add_argument("--chat", action="store_true", help="ask as a chat turn instead of three worked examples")
    args = parser.parse_args()

    path = smollm2_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    test = load_easyvqa("test")
    described = image_descriptions(test)
    questions = [ex for ex in test if ex.meta["qtype"] == "yes/no" and len(described[ex.meta["image_id"]]) == 2]
    questions = random.Random(0).sample(questions, min(args.n, len(questions)))
    yes, no = ("Yes", "No") if args.chat else (" yes", " no")
    yes_id, no_id = tokenizer(yes).input_ids[-1], tokenizer(no).input_ids[-1]
    correct = 0
    for ex in tqdm(questions, desc="text oracle"):
        ids = tokenizer(prompt(described[ex.meta["image_id"]], ex.meta["question"], args.chat), return_tensors="pt")
        with torch.no_grad():
            logits = model(**ids).logits[0, -1]
        correct += ("yes" if logits[yes_id] > logits[no_id] else "no") == ex.answer
    print(f"SmolLM2-135M-Instruct, yes/no from a text description ({'chat' if args.chat else 'few-shot'}): "
          f"{100 * correct / len(questions):.1f}% of {len(questions)}")


if __name__ == "__main__":
    main()
