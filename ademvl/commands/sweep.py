"""Sweep α, β, γ one at a time around a recipe, train + evaluate each, plot (the paper's Fig. 2).

Examples:
  ademvl sweep easyvqa-demo train.epochs=1 --alpha 0.05 0.1 0.2 --gamma 0 0.1 0.3
  ademvl sweep scienceqa-7b --beta 0.001 0.01 0.1 --eval-split test --output runs/sweep-beta

Each setting trains (ademvl.training) in OUTPUT/runs/<setting>/, is evaluated
(ademvl.evaluation) on --eval-split, and records its metrics there atomically;
OUTPUT/sweep.json holds all runs and OUTPUT/sweep.png one subplot per
hyperparameter. Rerunning the same command skips finished settings and resumes
an interrupted training. Put KEY=VALUE overrides before the --alpha/--beta/--gamma lists.
"""
from __future__ import annotations

import functools

from .options import parse_overrides


def add_arguments(parser) -> None:
    parser.add_argument("recipe", help="training recipe name (recipes/<name>.yaml) or YAML path")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="dotted recipe overrides kept fixed in every run, e.g. train.epochs=1")
    for name, greek in (("alpha", "α, weight of the fused result"), ("beta", "β, visual memory scale"),
                        ("gamma", "γ, adaptive drop ratio")):
        parser.add_argument(f"--{name}", type=float, nargs="+", default=[], metavar="V",
                            help=f"values of {greek} (model.method_config.{name})")
    parser.add_argument("--output", default="runs/sweep", help="sweep directory")
    parser.add_argument("--metric", default="accuracy",
                        help="metric to plot (accuracy = ScienceQA Average / easy-VQA overall; or e.g. CIDEr)")
    parser.add_argument("--eval-split", default="test", help="split each trained setting is evaluated on")
    parser.add_argument("--eval-limit", type=int, default=None, help="evaluate only the first N records")
    parser.add_argument("--eval-batch-size", type=int, default=8)


def run(args) -> int:
    from ..visualize import runner
    from ..visualize.sweep import run_sweep

    grid = {name: list(getattr(args, name)) for name in ("alpha", "beta", "gamma") if getattr(args, name)}
    run_setting = functools.partial(runner.run_setting, eval_split=args.eval_split, eval_limit=args.eval_limit,
                                    batch_size=args.eval_batch_size)
    result = run_sweep(args.recipe, grid, args.output, overrides=parse_overrides(args.overrides),
                       runner=run_setting, metric=args.metric)
    for record in result.runs:
        print(f"{record['parameter']}={record['value']:g}: {args.metric} {record['metrics'].get(args.metric)}")
    print(f"ran {len(result.executed)} new setting(s); wrote {result.summary_path} and {result.plot.path}")
    return 0
