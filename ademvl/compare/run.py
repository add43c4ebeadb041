"""`ademvl compare`: every variant tuned at every training size and seed through the demo's pipeline.

Each run lives in OUTPUT/runs/<variant>/n<size>/seed<seed>/ and is reused when asked for again
(`ademvl.demo.tuning`), so an interrupted comparison carries on where it stopped and a finished one
is re-reported for free. The same training draw serves every variant of one size and seed, and one
seeded test draw serves every run.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..atomic import atomic_write_json, atomic_write_text
from ..demo.run import DemoConfig, floor_row, llm_name, open_pipeline
from ..demo.tuning import DemoError, conflict, demo_recipe, other_backbones, train_and_evaluate
from . import report, stats
from .variants import GROUPS, VARIANTS, groups_of

SIZES = [250, 500, 1000, 2000, 6000]
RESULTS = "compare_results"


@dataclass
class CompareConfig:
    variants: list[str] = field(default_factory=lambda: list(GROUPS["methods"]))
    sizes: list[int] = field(default_factory=lambda: list(SIZES))   # training questions per run
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])      # training draw and training seed
    test_seed: int = 0                  # the one test draw every run is scored on
    best_alpha: float = 1.0             # ademvl-best-alpha-beta's α and β
    best_beta: float = 0.01
    reference: str = "ademvl"           # what the other variants are compared with
    min_steps: int = 0                  # at least this many optimizer steps per run (more epochs at small sizes)
    add_runs: list[str] = field(default_factory=list)  # other comparisons' compare_results.csv, reported with these
    # the pipeline's options (recipe, data, evaluation, backbones) as the demo takes them
    pipeline: DemoConfig = field(default_factory=lambda: DemoConfig(eval_questions=3000, output_dir="runs/compare"))


def _log(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(f"[compare] {message}")


def run_dir(out: Path, variant: str, size: int, seed: int) -> Path:
    return out / "runs" / variant / f"n{size}" / f"seed{seed}"


def plan(cfg: CompareConfig) -> list[tuple[str, int, int]]:
    """(variant, size, seed) in the order run: seed by seed, small sizes first, so that whole curves
    of one seed are there early."""
    return [(v, n, s) for s in cfg.seeds for n in cfg.sizes for v in cfg.variants]


def _check(cfg: CompareConfig) -> None:
    unknown = [v for v in cfg.variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; available: {', '.join(VARIANTS)}")
    for name, values in (("variants", cfg.variants), ("train-questions", cfg.sizes), ("seeds", cfg.seeds)):
        if not values:
            raise ValueError(f"--{name} is empty")
    if any(n < 1 for n in cfg.sizes):
        raise ValueError(f"--train-questions must be positive, got {cfg.sizes}")


def added_runs(cfg: CompareConfig, tables: list[tuple[str, list[dict]]], n_test: int, backbones: str = "") -> list[dict]:
    """The runs of the `--add-runs` tables ((path, rows) each), refused unless scored on this comparison's test draw,
    tuned on the same backbone weights (where their table records them) and not run here too (one row per
    variant × size × seed: which of two would the curves mean?)."""
    rows, seen = [], set(plan(cfg))
    for path, table in tables:
        for row in table:
            key = (row["variant"], row["size"], row["seed"])
            draw = (row["test_questions"], row["test_seed"])
            if draw != (n_test, cfg.test_seed):
                raise ValueError(f"{path}: {key[0]} n={key[1]} seed={key[2]} was scored on {draw[0]:,} test "
                                 f"questions of seed {draw[1]}, this comparison on {n_test:,} of seed "
                                 f"{cfg.test_seed}: accuracies on other test draws do not compare")
            if row["answer_style"] != cfg.pipeline.answer_style:
                raise ValueError(f"{path}: {key[0]} n={key[1]} seed={key[2]} was tuned on {row['answer_style']} "
                                 f"answers, this comparison on {cfg.pipeline.answer_style} answers (--answer-style): "
                                 "the two learn yes/no differently, one curve cannot hold both")
            if row.get("backbones") and backbones and row["backbones"] != backbones:
                raise ValueError(f"{path}: {key[0]} n={key[1]} seed={key[2]} was tuned on other backbone weights "
                                 f"({row['backbones']}, this comparison's are {backbones}: another tower build or "
                                 "LLM): accuracies on other backbones do not compare")
            if key in seen:
                raise ValueError(f"{path}: {key[0]} n={key[1]} seed={key[2]} is there twice (in this comparison "
                                 "or another --add-runs table); leave it out of one of them")
            seen.add(key)
            rows.append(row)
    return rows


def _preflight(cfg: CompareConfig, pipeline, out: Path, runs: list) -> None:
    """Refuse, before any work, a run directory that holds a run with other settings (nothing is overwritten)."""
    if cfg.pipeline.retrain:
        return
    problems = []
    for variant, size, seed in runs:
        directory = run_dir(out, variant, size, seed)
        recipe = demo_recipe(VARIANTS[variant].method, _settings(cfg, variant, pipeline),
                             _run_config(cfg, size, seed), pipeline, directory)
        problem = conflict(variant, recipe, directory) or other_backbones(variant, directory, pipeline.backbones)
        if problem:
            problems.append(problem)
    if problems:
        more = f" (and {len(problems) - 1} more run(s) like it)" if len(problems) > 1 else ""
        raise DemoError(problems[0] + more)


def _settings(cfg: CompareConfig, variant: str, pipeline) -> dict:
    return VARIANTS[variant].method_config(pipeline.tower, {"alpha": cfg.best_alpha, "beta": cfg.best_beta})


def _run_config(cfg: CompareConfig, size: int, seed: int) -> DemoConfig:
    """The pipeline's settings for one run; with `min_steps`, as many epochs over its questions as it
    takes to reach that many steps, so that a small size measures less data, not a shorter schedule."""
    steps_per_epoch = math.ceil(size / cfg.pipeline.batch_size)
    epochs = max(cfg.pipeline.epochs, math.ceil(cfg.min_steps / steps_per_epoch))
    return replace(cfg.pipeline, train_questions=size, seed=seed, epochs=epochs)


def summarise(cfg: CompareConfig, rows: list[dict], n_test: int, floor: dict | None, backbones: str = "") -> dict:
    """Curves and tables over `rows`: this comparison's runs and any added ones (their variants, sizes and
    seeds join the report's)."""
    variants = list(dict.fromkeys([*cfg.variants, *(r["variant"] for r in rows)]))
    sizes = sorted({*cfg.sizes, *(r["size"] for r in rows)})
    points = stats.curves(rows, variants, sizes)
    config = {**asdict(cfg), **{k: v for k, v in asdict(cfg.pipeline).items() if k not in ("methods", "seed")}}
    config.pop("pipeline")
    config["seeds"] = sorted({*cfg.seeds, *(r["seed"] for r in rows)})
    return {"config": config, "variants": variants, "sizes": sizes, "test_questions": n_test,
            "reference": cfg.reference, "rows": rows, "points": points, "floor": floor, "backbones": backbones,
            "separation": stats.separation(points, cfg.reference)}


def write_results(result: dict, out: Path, plots: bool = True) -> dict:
    """The curves (curves_<group>.png), then compare_results.json / .csv / .md, which name them."""
    if plots:
        title = (f"easy-VQA, frozen {llm_name(result['config'].get('llm'))}: accuracy vs training questions, "
                 f"mean ± std over seeds "
                 f"{', '.join(map(str, result['config']['seeds']))}; {result['test_questions']:,} test questions")
        result["plots"] = [str(report.plot_curves(result["points"], names, out / f"curves_{group}.png", title,
                                                  result["floor"]))
                           for group, names in groups_of(result["variants"]).items()]
    atomic_write_json(out / f"{RESULTS}.json", result)
    atomic_write_text(out / f"{RESULTS}.csv", report.runs_csv(result["rows"]))
    atomic_write_text(out / f"{RESULTS}.md", report.markdown(result))
    return result


def run_compare(cfg: CompareConfig) -> dict:
    """Tune and score every (variant, size, seed) not done yet, then write the tables and the curves."""
    from tqdm.auto import tqdm

    _check(cfg)
    tables = [(path, report.read_runs(path)) for path in cfg.add_runs]  # a malformed one fails before any work
    out = Path(cfg.pipeline.output_dir)
    total = time.perf_counter()
    pipeline = open_pipeline(cfg.pipeline, test_seed=cfg.test_seed, log=_log)
    runs = plan(cfg)
    _preflight(cfg, pipeline, out, runs)
    added = added_runs(cfg, tables, len(pipeline.test), pipeline.backbones)
    unmarked = sum(not row.get("backbones") for row in added)
    if unmarked:
        _log(f"{unmarked} added run(s) do not record their backbone weights (tables written before the column): "
             "reported as if tuned on these")
    floor = floor_row(cfg.pipeline, pipeline, out) if cfg.pipeline.floor else None
    rows = []
    bar = tqdm(runs, desc="compare", unit="run", disable=not cfg.pipeline.progress)
    for variant, size, seed in bar:
        bar.set_postfix_str(f"{variant} n={size} seed={seed}")
        config = _run_config(cfg, size, seed)
        row = train_and_evaluate(f"{variant} n={size} seed={seed}", VARIANTS[variant].method,
                                 _settings(cfg, variant, pipeline), config, pipeline, run_dir(out, variant, size, seed))
        rows.append({"variant": variant, "size": size, "seed": seed, "epochs": config.epochs,
                     "test_questions": len(pipeline.test), "test_seed": cfg.test_seed,
                     "answer_style": config.answer_style, **row})
        # tables after every run: an interrupted comparison still leaves what it measured
        write_results(summarise(cfg, rows + added, len(pipeline.test), floor, pipeline.backbones), out, plots=False)
    bar.close()
    result = summarise(cfg, rows + added, len(pipeline.test), floor, pipeline.backbones)
    result["seconds"] = time.perf_counter() - total
    write_results(result, out)
    print()
    print(report.accuracy_table(result["points"], result["variants"], result["sizes"], "overall"))
    print(f"\n{stats.regime(result['separation'])}.")
    print(f"{len(rows)} runs ({sum(not r['reused'] for r in rows)} tuned now)"
          + (f" and {len(added)} added from {', '.join(cfg.add_runs)}" if added else "")
          + f" on {len(pipeline.test):,} test "
          f"questions; total {result['seconds']:.0f} s; tables in {out / (RESULTS + '.md')}, "
          f"plots {', '.join(result['plots'])}")
    return result
