"""`ademvl` command line: one module per sub-command in `ademvl/commands/`."""
from __future__ import annotations

import argparse
import importlib
import sys

# sub-command name → module in ademvl.commands (each has add_arguments(parser) and run(args))
COMMANDS = {
    "demo": "The offline demo: tune on easy-VQA with SmolLM2-135M, evaluate, compare with the no-image floor.",
    "compare": "Learning curves of every method and ADEM-VL ablation over training sizes and seeds (easy-VQA).",
    "params": "Print trainable and frozen parameter counts of a method on named backbones (meta device).",
    "train": "Train a method from a recipe (YAML) with checkpoints, resume and multi-GPU via accelerate.",
    "eval": "Evaluate a saved adapter on ScienceQA / COCO / easy-VQA / LLaVA-instruct; save every prediction.",
    "generate": "Answer one prompt about one image (or none) with a saved adapter.",
    "serve": "Serve a saved adapter: OpenAI-compatible /v1/chat/completions and a web chat page.",
    "viz": "Draw per-scale maps of the visual features each text token attended and kept (Fig. 3).",
    "sweep": "Train and evaluate a recipe over alpha/beta/gamma values and plot accuracy (Fig. 2).",
    "bench": "FLOPs and interleaved wall-clock of every method and the bare LLM; writes JSON + Markdown.",
    "export": "Export an adapter to another format: LLaVA-LoRA's LoRA layers as a peft adapter (and merged).",
    "convert": "Turn the official ADEM-VL release (checkpoints, Meta-layout LLaMA) into what the library loads.",
    "plan": "Will a training run fit in GPU memory? Per-device weights, optimizer, activations; what makes it fit.",
}


class OneLineParser(argparse.ArgumentParser):
    """An option error is one line naming the option (argparse's own text), without the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="ademvl", description="ADEM-VL and its baselines on frozen Hugging Face backbones.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"ademvl.commands.{name}")
        command = sub.add_parser(name, help=help_text, description=module.__doc__,
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(command)
        command.set_defaults(_run=module.run, _parser=command)
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Like `parse_args`, but KEY=VALUE overrides may also come after options (`train R --resume k=v`):
    argparse stops filling a positional list at the first option, so the rest come back as extras."""
    args, extras = parser.parse_known_args(argv)
    if extras and hasattr(args, "overrides") and not any(item.startswith("-") for item in extras):
        args.overrides = [*(args.overrides or []), *extras]
    elif extras:
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(build_parser(), argv)
    from .training.trainer import TrainingError

    try:
        return args._run(args) or 0
    except (ValueError, FileNotFoundError, ImportError, TrainingError) as error:
        # Bad input (or a run that cannot go on) gets one clear line, not a traceback.
        print(f"ademvl {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside a training loop (which names its checkpoint itself)
        print(f"ademvl {args.command}: error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
