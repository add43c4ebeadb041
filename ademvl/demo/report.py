"""The demo's outputs: one table on the terminal, and a bar chart PNG."""
from __future__ import annotations

import textwrap
from pathlib import Path

from ..data.easyvqa import QUESTION_TYPES as QTYPES


YES_NO_BALANCED = "yes/no balanced"  # 50 for answers read off the phrasing alone (see score_exact_match)
METRICS = ("overall", *QTYPES, YES_NO_BALANCED)
# % of yes/no rationale answers whose verdict contradicts the attribute they name: a failed comparison
# rather than a misread image (score_exact_match); not an accuracy, so reported beside them, not among them
CONTRADICTING = "yes/no contradicting"
_YES_NO_KEYS = {YES_NO_BALANCED: "balanced", CONTRADICTING: "contradicting"}
REPORTED = (*METRICS, CONTRADICTING)  # every number a run row carries into comparisons


def metric(row: dict, name: str) -> float | None:
    """One number of a result row: overall, a question type, the balanced yes/no accuracy, or the share of
    rationale verdicts that contradict their own attribute."""
    if name == "overall":
        return row["overall"]
    if name in _YES_NO_KEYS:
        return (row.get("yes_no") or {}).get(_YES_NO_KEYS[name])
    return row["by_type"].get(name)


def _cell(value, fmt="{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def format_table(rows: list[dict]) -> str:
    """rows: dicts with method, trainable, extra_tokens, train_s, eval_s, overall, by_type."""
    header = ["method", "trainable", "extra tok", "train s", "eval s", *METRICS]
    lines = [header]
    for r in rows:
        lines.append([
            r["method"], f"{r['trainable']:,}", str(r["extra_tokens"]), _cell(r.get("train_s"), "{:.0f}"),
            _cell(r.get("eval_s"), "{:.0f}"), *(_cell(metric(r, name)) for name in METRICS),
        ])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for k, line in enumerate(lines):
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def plot_results(rows: list[dict], path: str | Path, title: str) -> Path:
    """Grouped bars: accuracy overall and per question type, one group per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["overall", *QTYPES]
    fig, ax = plt.subplots(figsize=(max(5.5, 1.6 + 1.5 * len(rows)), 4.0), dpi=120)
    width = 0.8 / len(keys)
    for k, key in enumerate(keys):
        values = [r["overall"] if key == "overall" else r["by_type"].get(key, 0.0) for r in rows]
        xs = [i + (k - (len(keys) - 1) / 2) * width for i in range(len(rows))]
        ax.bar(xs, values, width, label=key)
        for x, v in zip(xs, values):
            ax.text(x, v + 1, f"{v:.1f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(rows)), [r["method"] for r in rows])
    ax.set_ylim(0, 118)  # headroom above 100 for the legend, so it never hides a bar
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("exact-match accuracy (%)")
    ax.axhline(90, color="grey", lw=0.8, ls="--")
    ax.set_title("\n".join(textwrap.wrap(title, 60)), fontsize=9)
    ax.legend(fontsize=7, ncol=len(keys), loc="upper center", frameon=False)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
