"""Can SmolLM2-135M *learn* easy-VQA's yes/no comparison when the image is given as perfect text?

LoRA of LLaVA-LoRA's size (rank 6 on q_proj/v_proj, `ademvl.methods.llava_lora.lora_config`) is tuned
on the demo's schedule (batch 16, lr 4e-3, the demo's step count) on training questions whose images are
described in words ("Image: a red circle"), drawn evenly over what they ask about, negation and answer
(`balanced_sample(..., within=...)`), then scored on test yes/no questions: raw and balanced accuracy
(50 = answers read off the phrasing). It separates "the LLM cannot learn the comparison" from "the visual
side does not deliver the attribute" (docs/results.md). Usage: python scripts/demo_text_lora.py [--steps 375]
"""
from __future__ import annotations

import argparse
import random

import torch
from tqdm import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

from ademvl.backbones.smollm2 import smollm2_path
from ademvl.data import load_easyvqa, score_exact_match
from ademvl.methods.llava_lora import LlavaLoraSettings, inject_lora, lora_config
from ademvl.training.data import balanced_sample
from demo_text_oracle import image_descriptions


def described(ex, descriptions) -> str:
    seen = descriptions[ex.meta["image_id"]]
    return f"Image: a {seen['color']} {seen['shape']}\nQuestion: {ex.meta['question']}\nAnswer:"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=375, help="optimizer steps (the demo's 6,000 questions: 375)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=4e-3)
    parser.add_argument("--n", type=int, default=600, help="yes/no test questions (seeded draw)")
    parser.add_argument("--prior", action="store_true", help="draw by question type only (the source's label prior)")
    args = parser.parse_args()
    torch.manual_seed(0)

    path = smollm2_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    for p in model.parameters():
        p.requires_grad_(False)
    inject_lora(model, lora_config(model, LlavaLoraSettings()))
    train, test = load_easyvqa("train"), load_easyvqa("test")
    train_seen, test_seen = image_descriptions(train), image_descriptions(test)
    usable = [ex for ex in train if ex.meta["qtype"] == "yes/no" and len(train_seen[ex.meta["image_id"]]) == 2]
    within = () if args.prior else ("asks_about", "negated", "answer")
    draw = balanced_sample(usable, "qtype", args.steps * args.batch_size, seed=0, within=within)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.0)
    tokenizer.padding_side = "left"
    model.train()
    bar = tqdm(range(args.steps), desc="LoRA on text")
    for step in bar:
        batch = draw[step * args.batch_size:(step + 1) * args.batch_size]
        enc = tokenizer([described(ex, train_seen) for ex in batch], return_tensors="pt", padding=True)
        target = torch.tensor([tokenizer(" " + ex.answer).input_ids[-1] for ex in batch])
        logits = model(**enc).logits[:, -1]
        loss = torch.nn.functional.cross_entropy(logits, target)
        loss.backward()
        lr = args.lr * min(1.0, (step + 1) / (0.1 * args.steps))  # short warm-up, then constant
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        optimizer.zero_grad()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    questions = [ex for ex in test if ex.meta["qtype"] == "yes/no" and len(test_seen[ex.meta["image_id"]]) == 2]
    questions = random.Random(0).sample(questions, min(args.n, len(questions)))
    yes_id, no_id = tokenizer(" yes").input_ids[-1], tokenizer(" no").input_ids[-1]
    preds = {}
    with torch.no_grad():
        for i in range(0, len(questions), 32):
            chunk = questions[i:i + 32]
            enc = tokenizer([described(ex, test_seen) for ex in chunk], return_tensors="pt", padding=True)
            logits = model(**enc).logits[:, -1]
            for ex, row in zip(chunk, logits):
                preds[ex.id] = "yes" if row[yes_id] > row[no_id] else "no"
    scored = score_exact_match(preds, questions)
    print(f"{len(questions)} test yes/no questions after {args.steps} steps "
          f"({'prior' if args.prior else 'balanced'} draw): accuracy {scored['overall']:.1f}%, "
          f"balanced {scored['yes_no']['balanced']:.1f}% (50 = from the phrasing alone)")


if __name__ == "__main__":
    main()
