"""Train a method from a recipe (YAML in recipes/ or a path), on one CPU or many GPUs.

Examples:
  ademvl train easyvqa-demo
  ademvl train scienceqa-7b train.epochs=1 model.method_config.alpha=0.2
  ademvl train recipes/scienceqa-7b.yaml --resume
  accelerate launch --num_processes 8 -m ademvl.cli train scienceqa-7b     (or torchrun --nproc_per_node 8)
  torchrun --nproc_per_node 8 -m ademvl.cli train scienceqa-13b train.sharding=fsdp   (FSDP2: the frozen LLM
      sharded over the processes; on a machine without GPUs accelerate launch needs --multi_gpu for N processes)

The run dir (train.output_dir, default runs/<recipe>) receives the resolved
recipe.yaml, metrics.jsonl, checkpoints/step-N (last train.keep_last kept) and
the final adapter/ (load with VLModel.from_adapter).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the examples' line breaks and still show defaults."""


def _recipe_keys() -> str:
    from ..recipes import SECTIONS

    lines = ["recipe keys (set any with KEY=VALUE):"]
    for section, cls in SECTIONS.items():
        lines.append(f"  {section}: " + ", ".join(f.name for f in dataclasses.fields(cls)))
    lines.append("see ademvl/recipes.py for what each key means and recipes/*.yaml for the paper's values")
    return "\n".join(lines)


def add_arguments(parser) -> None:
    parser.formatter_class = _Formatter
    parser.epilog = _recipe_keys()
    parser.add_argument("recipe", help="recipe name (recipes/<name>.yaml) or path to a recipe YAML file")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="dotted-key overrides parsed as YAML, e.g. train.epochs=1 model.method_config.alpha=0.2")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in the run dir (same optimizer, lr schedule, "
                             "data order and RNG state)")
    parser.add_argument("--output-dir", default=None,
                        help="run directory (overrides train.output_dir; default runs/<recipe name>)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args) -> int:
    from ..recipes import load_recipe
    from ..training import TrainingError, train
    from ..training.errors import TrainingInterrupted

    recipe = load_recipe(args.recipe, args.overrides)
    try:
        result = train(recipe, resume=args.resume, output_dir=args.output_dir, progress=not args.no_progress)
    except TrainingError as error:
        print(f"ademvl train: error: {error}", file=sys.stderr)
        return 130 if isinstance(error, TrainingInterrupted) else 1  # 130: the shell's code for Ctrl-C
    if not result.main_process:
        return 0
    loss = "n/a" if result.final_loss is None else f"{result.final_loss:.4f}"
    print(f"trained {result.steps}/{result.total_steps} steps in {result.seconds:.1f}s "
          f"({result.steps_per_second:.2f} steps/s, {result.samples_per_second:.1f} samples/s), final loss {loss}"
          + (f", {result.skipped} record(s) skipped" if result.skipped else ""))
    print(f"adapter: {result.adapter_dir}")
    return 0
