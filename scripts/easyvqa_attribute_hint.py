"""Write an easy-VQA layout whose yes/no questions carry the asked attribute as words, for `--data-dir`.

"does the image contain a circle?" about a triangle becomes "does the image contain a circle (seen:
triangle)?": the image's attribute (`image_attributes`, read off the split's own questions) is given in
the text, so a run tuned on it measures whether a method can *compare* the question with the attribute
once it is a word, apart from whether it can read it off the image (docs/results.md). The hint stands
inside the question so that what a question asks about and its negation parse as before; yes/no questions
whose asked attribute stays open are left out; the test split keeps its yes/no questions only; images are
linked, not copied.

Usage: python scripts/easyvqa_attribute_hint.py OUT_DIR, then e.g.
    ademvl compare --variants ademvl-best-alpha-beta --data-dir OUT_DIR --train-questions 2000 --epochs 2 \\
        --seeds 0 --balance-within asks_about,negated,answer --eval-questions 600 --no-floor
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ademvl.data.easyvqa import easyvqa_data_dir, image_attributes, question_facets, question_type


def hinted(questions: list, keep_naming: bool) -> list:
    attributes = image_attributes(questions)
    out = []
    for question, answer, image_id in questions:
        if question_type(question, answer) != "yes/no":
            if keep_naming:
                out.append([question, answer, image_id])
            continue
        seen = attributes.get(int(image_id), {}).get(question_facets(question, answer)["asks_about"])
        if seen:
            out.append([f"{question.rstrip('?')} (seen: {seen})?", answer, image_id])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the directory to write (train/, test/, answers.txt)")
    args = parser.parse_args()
    source = Path(easyvqa_data_dir())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "answers.txt").write_text((source / "answers.txt").read_text())
    for part in ("train", "test"):
        rows = hinted(json.loads((source / part / "questions.json").read_text()), keep_naming=part == "train")
        (args.out / part).mkdir(exist_ok=True)
        (args.out / part / "questions.json").write_text(json.dumps(rows))
        if not (args.out / part / "images").exists():
            os.symlink(source / part / "images", args.out / part / "images")
        print(f"{part}: {len(rows)} questions, e.g. {rows[next(i for i, r in enumerate(rows) if '(seen' in r[0])]}")


if __name__ == "__main__":
    main()
