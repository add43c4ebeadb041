"""Compare methods and ADEM-VL ablations on learning curves: every variant tuned at every training size
and seed through the demo's pipeline (same backbones, recipe, trainer and evaluator), all scored on one
seeded test draw. Writes OUTPUT-DIR/compare_results.{json,csv,md} (mean ± std over seeds, costs, and
where variants differ beyond the seed spread) and curves_*.png (accuracy vs training questions with
error bars). Finished runs are reused and interrupted ones resumed, so the same command carries on;
a run directory copied to OUTPUT-DIR/runs/VARIANT/nSIZE/seedSEED (a demo's, another machine's) counts
as that run where its settings are the same.

Variants: the groups methods, ablations, all, table7, table8, table9, or names (see --variants)."""
from __future__ import annotations

from ..compare import CompareConfig, run_compare
from ..compare.run import SIZES
from ..compare.variants import BEST_ALPHA, BEST_BETA, VARIANTS, parse_variants
from .demo import add_pipeline_arguments, pipeline_config
from .options import int_list, non_negative, positive_float, positive_int


seed = non_negative("seed")


def add_arguments(parser) -> None:
    c = CompareConfig()
    parser.add_argument("--variants", default="methods",
                        help="comma-separated variants or groups: methods (the five methods), ablations (ADEM-VL "
                             "and its Table VI ablations), all (both), table7, table8, table9 (the paper's design "
                             "space: where the cross-attention reads and adds, the projection φ, the prompt's "
                             "pooling and sizes); names: " + ", ".join(VARIANTS))
    parser.add_argument("--train-questions", type=int_list(positive_int), default=",".join(map(str, SIZES)),
                        help="training sizes (questions), comma-separated: one point of each curve per size")
    parser.add_argument("--seeds", type=int_list(seed), default=",".join(map(str, c.seeds)),
                        help="seeds, comma-separated: each draws its training questions and seeds training")
    parser.add_argument("--test-seed", type=seed, default=c.test_seed,
                        help="seed of the one test draw every run is scored on (changing it, or --eval-questions, "
                             "scores the finished runs again, replacing their scores: keep both with --output-dir)")
    parser.add_argument("--best-alpha", type=positive_float, default=BEST_ALPHA,
                        help="α of the ademvl-best-alpha-beta variant (the full ademvl runs at the paper's 0.1)")
    parser.add_argument("--best-beta", type=positive_float, default=BEST_BETA,
                        help="β of the ademvl-best-alpha-beta variant (the full ademvl runs at the paper's 0.01)")
    parser.add_argument("--min-steps", type=non_negative("step count"), default=c.min_steps,
                        help="at least this many optimizer steps per run: small sizes get more epochs over their "
                             "questions (0: every size gets --epochs)")
    parser.add_argument("--add-runs", action="append", default=[], metavar="CSV",
                        help="report with this comparison's runs those another one recorded (its "
                             "compare_results.csv: another machine's, an earlier output directory's); they must "
                             "be scored on the same test draw (--eval-questions, --test-seed) and tuned with the "
                             "same pipeline options on the same backbone weights (a tower built on another CPU "
                             "differs); repeatable")
    add_pipeline_arguments(parser, c.pipeline)


def run(args) -> int:
    variants = parse_variants(args.variants)
    cfg = CompareConfig(variants=variants, sizes=args.train_questions, seeds=args.seeds, test_seed=args.test_seed,
                        best_alpha=args.best_alpha, best_beta=args.best_beta, min_steps=args.min_steps,
                        add_runs=args.add_runs,
                        pipeline=pipeline_config(args, methods=[]))
    run_compare(cfg)
    return 0
