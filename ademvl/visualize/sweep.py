"""Fig. 2: accuracy against α, β and γ, each swept one at a time around the recipe.

`run_sweep` trains and evaluates every setting serially through a `runner`
(`run_setting(recipe, overrides, output_dir) -> metrics`), records each
setting's result in its own file (atomically) and all of them in
`sweep.json`, so an interrupted sweep resumes without rerunning finished
settings. `plot_sweep` draws one subplot per hyperparameter.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_write_bytes, atomic_write_json
from .fusion_map import FigureInfo, _pyplot

PARAMETERS = ("alpha", "beta", "gamma")
# Where each swept hyperparameter lives in a recipe (dotted override keys, see ademvl.recipes).
RECIPE_KEYS = {name: f"model.method_config.{name}" for name in PARAMETERS}
RESULT_NAME = "sweep_result.json"
SUMMARY_NAME = "sweep.json"
PLOT_NAME = "sweep.png"

Runner = Callable[[str, dict, Path], dict]


@dataclass
class SweepResult:
    runs: list[dict]                  # one record per setting, in sweep order
    executed: list[str]               # ids of the settings run by this call (the others were resumed)
    summary_path: Path
    plot: FigureInfo | None = None
    extra: dict = field(default_factory=dict)


def sweep_settings(grid: dict[str, list], overrides: dict | None = None, keys: dict | None = None) -> list[dict]:
    """One-at-a-time settings: each value of each swept hyperparameter on top of `overrides`.

    `keys` maps a hyperparameter to its override key (default `RECIPE_KEYS`; others pass through).
    """
    overrides = dict(overrides or {})
    keys = RECIPE_KEYS if keys is None else keys
    settings = []
    for name, values in grid.items():
        if not values:
            continue
        key = keys.get(name, name)
        if key in overrides:
            raise ValueError(f"'{key}' is both swept (--{name}) and fixed by an override: drop one of them")
        for value in values:
            settings.append({"parameter": name, "value": value, "overrides": {**overrides, key: value}})
    if not settings:
        raise ValueError(f"nothing to sweep: give values for at least one of {', '.join(PARAMETERS)}")
    return settings


def setting_id(recipe: str, setting: dict) -> str:
    """A readable, stable directory name: `alpha=0.05-<hash of recipe + all overrides>`."""
    canonical = json.dumps({"recipe": recipe, "overrides": setting["overrides"]}, sort_keys=True, default=str)
    digest = hashlib.sha1(canonical.encode()).hexdigest()[:8]
    label = re.sub(r"[^A-Za-z0-9_.=-]+", "_", f"{setting['parameter']}={setting['value']}")
    return f"{label}-{digest}"


def _finished(path: Path, recipe: str, setting: dict) -> dict | None:
    """The recorded result of this exact setting, or None if it has not finished."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # a torn or foreign file: run the setting again
    same = record.get("recipe") == recipe and record.get("overrides") == json.loads(json.dumps(setting["overrides"]))
    return record if same and isinstance(record.get("metrics"), dict) else None


def run_sweep(
    recipe: str,
    grid: dict[str, list],
    output_dir: str | Path,
    overrides: dict | None = None,
    runner: Runner | None = None,
    metric: str = "accuracy",
    plot: bool = True,
    log: Callable[[str], None] = print,
    keys: dict | None = None,
) -> SweepResult:
    """Run every unfinished setting serially, then write `sweep.json` and `sweep.png`.

    `runner(recipe, overrides, run_dir) -> metrics` defaults to `runner.run_setting`
    (train with `ademvl.training`, evaluate with `ademvl.evaluation`).
    """
    if runner is None:
        from . import runner as runner_module

        runner = runner_module.run_setting
    output_dir = Path(output_dir)
    settings = sweep_settings(grid, overrides, keys)
    summary_path = output_dir / SUMMARY_NAME
    runs, executed = [], []

    def write_summary():
        atomic_write_json(summary_path, {"recipe": recipe, "grid": grid, "overrides": overrides or {},
                                         "metric": metric, "runs": runs})

    for number, setting in enumerate(settings, 1):
        run_id = setting_id(recipe, setting)
        run_dir = output_dir / "runs" / run_id
        result_path = run_dir / RESULT_NAME
        record = _finished(result_path, recipe, setting)
        if record is None:
            log(f"[{number}/{len(settings)}] {setting['parameter']}={setting['value']}: running in {run_dir}")
            start = time.perf_counter()
            metrics = runner(recipe, dict(setting["overrides"]), run_dir)
            if not isinstance(metrics, dict):
                raise ValueError(f"the runner returned {type(metrics).__name__} for {run_id}, not a dict of metrics")
            record = {"id": run_id, "recipe": recipe, "parameter": setting["parameter"], "value": setting["value"],
                      "overrides": setting["overrides"], "metrics": metrics, "output_dir": str(run_dir),
                      "seconds": round(time.perf_counter() - start, 3)}
            atomic_write_json(result_path, record)
            record = json.loads(result_path.read_text())  # what a resumed run will see
            executed.append(run_id)
        else:
            log(f"[{number}/{len(settings)}] {setting['parameter']}={setting['value']}: done earlier, skipped")
        runs.append(record)
        write_summary()
    result = SweepResult(runs=runs, executed=executed, summary_path=summary_path)
    if plot:
        result.plot = plot_sweep(runs, output_dir / PLOT_NAME, metric, title=f"{Path(str(recipe)).stem}: {metric}")
    return result


def plot_sweep(runs: list[dict], path: str | Path, metric: str = "accuracy",
               panel_inches: float = 3.0, dpi: int = 100, title: str | None = None) -> FigureInfo:
    """One subplot per swept hyperparameter: `metric` against its values (in the order given).

    The PNG is `(panel_inches·n, panel_inches)` inches at `dpi`; FigureInfo.data maps
    each hyperparameter to its (values, metric values) as plotted.
    """
    plt = _pyplot()
    series: dict[str, tuple[list, list]] = {}
    for run in runs:
        if metric not in run["metrics"]:
            raise ValueError(f"run {run['id']} reported no metric '{metric}' (it has: {sorted(run['metrics'])})")
        xs, ys = series.setdefault(run["parameter"], ([], []))
        xs.append(run["value"]), ys.append(float(run["metrics"][metric]))
    if not series:
        raise ValueError("no runs to plot")
    width_in, height_in = panel_inches * len(series), panel_inches
    fig, axes = plt.subplots(1, len(series), figsize=(width_in, height_in), dpi=dpi, squeeze=False)
    try:
        for ax, (name, (xs, ys)) in zip(axes[0], series.items()):
            # Categorical x positions: the values usually span decades (β: 0.001 … 1).
            ax.plot(range(len(xs)), ys, marker="o")
            ax.set_xticks(range(len(xs)), [f"{x:g}" if isinstance(x, (int, float)) else str(x) for x in xs])
            ax.set_xlabel(name), ax.set_ylabel(metric)
            ax.grid(alpha=0.3)
        if title:
            fig.suptitle(title, fontsize=9)
        # margins in inches (tick labels + axis label), so no panel count clips them
        fig.subplots_adjust(left=0.8 / width_in, right=1 - 0.15 / width_in, bottom=0.55 / height_in,
                            top=1 - (0.4 if title else 0.2) / height_in, wspace=0.5)
        path = Path(path)
        atomic_write_bytes(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    finally:
        plt.close(fig)
    size = (int(round(width_in * dpi)), int(round(height_in * dpi)))
    return FigureInfo(path=path, size=size, data={"subplots": len(series), "series": series, "metric": metric})
