"""Learning curves from runs: mean ± std over seeds per variant and size, and where variants differ
by more than their seed spread (the regime in which this setup can tell methods apart)."""
from __future__ import annotations

import itertools
import math
import statistics

from ..demo.report import CONTRADICTING, METRICS, REPORTED, YES_NO_BALANCED, metric  # noqa: F401  (the demo's metrics, one definition)


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None with fewer than two values)."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def curves(rows: list[dict], variants: list[str], sizes: list[int]) -> list[dict]:
    """One point per variant × size (in the order asked): seeds run, mean ± std of every metric, costs."""
    points = []
    for variant, size in itertools.product(variants, sizes):
        runs = [r for r in rows if r["variant"] == variant and r["size"] == size]
        if not runs:
            continue
        point = {"variant": variant, "method": runs[0]["method"], "size": size,
                 "seeds": sorted(r["seed"] for r in runs), "trainable": runs[0]["trainable"], "extra_tokens": runs[0]["extra_tokens"]}
        for name in REPORTED:
            point[name] = mean_std([metric(r, name) for r in runs])
        for name in ("train_s", "eval_s"):
            point[name] = mean_std([r.get(name) for r in runs])[0]
        points.append(point)
    return points


def apart(a: dict, b: dict, name: str = "overall") -> bool | None:
    """Whether two points differ by more than their seed spreads (|Δmean| > std_a + std_b: the mean ± std
    bars do not overlap); None when either has fewer than two seeds."""
    (ma, sa), (mb, sb) = a[name], b[name]
    if None in (ma, mb, sa, sb):
        return None
    return abs(ma - mb) > sa + sb


def separation(points: list[dict], reference: str = "ademvl", name: str = "overall") -> list[dict]:
    """Per training size: spread of the variants' means, the largest seed std, the pairs that stand apart,
    and every variant's difference from `reference`."""
    table = []
    for size in sorted({p["size"] for p in points}):
        here = [p for p in points if p["size"] == size and p[name][0] is not None]
        means = [p[name][0] for p in here]
        stds = [p[name][1] for p in here if p[name][1] is not None]
        pairs = [(a, b) for a, b in itertools.combinations(here, 2)]
        judged = [(a, b) for a, b in pairs if apart(a, b, name) is not None]
        ref = next((p for p in here if p["variant"] == reference), None)
        table.append({
            "size": size, "variants": len(here), "spread": (max(means) - min(means)) if means else None,
            "max_std": max(stds) if stds else None, "pairs": len(judged),
            "apart": [[a["variant"], b["variant"]] for a, b in judged if apart(a, b, name)],
            "vs_reference": {p["variant"]: {"delta": p[name][0] - ref[name][0], "apart": apart(p, ref, name)}
                             for p in here if ref is not None and p is not ref},
        })
    return table


def regime(table: list[dict]) -> str:
    """One sentence: at which training sizes some variants differ beyond the seed spread."""
    judged = [row for row in table if row["pairs"]]
    if not any(row["variants"] > 1 for row in table):
        return "not judged: it takes at least two variants"
    if not judged:
        return "not judged: every point needs at least two seeds"
    sizes = [row["size"] for row in judged if row["apart"]]
    if not sizes:
        checked = ", ".join(f"{row['size']:,}" for row in judged)
        return f"no pair of variants differs by more than its seed spread at any size ({checked} training questions)"
    parts = [f"{row['size']:,} ({len(row['apart'])} of {row['pairs']} pairs)" for row in judged if row["apart"]]
    return "variants differ by more than their seed spread at " + ", ".join(parts) + " training questions"


def test_error(accuracy: float, n: int) -> float:
    """Binomial standard error (points) of one accuracy measured on n test questions."""
    p = min(max(accuracy / 100.0, 0.0), 1.0)
    return 100.0 * math.sqrt(p * (1 - p) / n) if n else float("nan")
