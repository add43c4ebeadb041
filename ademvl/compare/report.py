"""`ademvl compare`'s outputs: Markdown tables ready for docs/results.md, a CSV of every run, and
learning curves with error bars (one PNG per group of variants)."""
from __future__ import annotations

import csv
import io
import textwrap
from pathlib import Path

from ..atomic import atomic_write_bytes
from ..demo.run import llm_name
from .stats import CONTRADICTING, METRICS, REPORTED, YES_NO_BALANCED, metric, regime, test_error
from .variants import VARIANTS

RUN_COLUMNS = ["variant", "method", "size", "seed", "epochs", "test_questions", "test_seed", "answer_style", "overall",
               *REPORTED[1:],
               "trainable", "extra_tokens", "train_s", "eval_s", "train_steps", "final_loss", "train_resumed",
               "eval_resumed", "load_average", "threads", "backbones"]
# what a recorded run must carry to be reported again (the test draw: its accuracies compare only on the same one)
REQUIRED_COLUMNS = ["variant", "method", "size", "seed", "test_questions", "test_seed", "overall", "trainable",
                    "extra_tokens"]
_INTS = {"size", "seed", "epochs", "test_questions", "test_seed", "trainable", "extra_tokens", "train_steps", "threads"}
_FLOATS = {*REPORTED, "train_s", "eval_s", "final_loss", "load_average"}
_BOOLS = {"train_resumed", "eval_resumed"}


def runs_csv(rows: list[dict]) -> str:
    """One line per variant × size × seed."""
    out = io.StringIO()
    writer = csv.DictWriter(out, RUN_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, **{q: metric(r, q) for q in REPORTED}})
    return out.getvalue()


def read_runs(path: str | Path) -> list[dict]:
    """The runs another comparison recorded (its compare_results.csv, as `runs_csv` writes it), as rows
    again: how runs tuned on other machines or in other output directories join one report."""
    path = Path(path)
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: not a run table of `ademvl compare` (no column {', '.join(missing)})")
        return [_parse_run(line, f"{path} line {number}") for number, line in enumerate(reader, start=2)]


def _parse_run(line: dict, where: str) -> dict:
    """One CSV line back into the row `summarise` reads (accuracies per question type under by_type)."""
    row = {"reused": True}
    for column, text in line.items():
        if column is None or column not in RUN_COLUMNS:
            continue
        try:
            if text in ("", None):
                value = None
            elif column in _INTS:
                value = int(text)
            elif column in _FLOATS:
                value = float(text)
            elif column in _BOOLS:
                value = {"True": True, "False": False}[text]
            else:
                value = text
        except (KeyError, ValueError):
            raise ValueError(f"{where}: column {column!r} holds {text!r}") from None
        row[column] = value
    for column in REQUIRED_COLUMNS:
        if row.get(column) is None:
            raise ValueError(f"{where}: column {column!r} is empty")
    row["answer_style"] = row.get("answer_style") or "word"  # tables written before the option: word answers
    by_type = {q: row.pop(q, None) for q in METRICS[1:-1]}
    row["by_type"] = {q: value for q, value in by_type.items() if value is not None}
    row["yes_no"] = {"balanced": row.pop(YES_NO_BALANCED, None), "contradicting": row.pop(CONTRADICTING, None)}
    return row


def _pm(value: tuple) -> str:
    mean, std = value
    if mean is None:
        return "–"
    return f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std:.1f}"


def _table(header: list[str], lines: list[list[str]]) -> str:
    rows = [header, ["---"] * len(header), *lines]
    return "\n".join("| " + " | ".join(map(str, row)) + " |" for row in rows)


def accuracy_table(points: list[dict], variants: list[str], sizes: list[int], name: str) -> str:
    cell = {(p["variant"], p["size"]): _pm(p[name]) for p in points}
    return _table(["variant", *(f"{s:,}" for s in sizes)],
                  [[v, *(cell.get((v, s), "–") for s in sizes)] for v in variants])


def cost_table(rows: list[dict], variants: list[str]) -> str:
    """Parameters, tokens and seconds per 1,000 questions (training and test), over every run of a variant."""
    lines = []
    for v in variants:
        runs = [r for r in rows if r["variant"] == v]
        if not runs:
            continue
        clean = [r for r in runs if not r.get("train_resumed")]
        train = sum(r["train_s"] for r in clean) / max(sum(r["size"] for r in clean), 1) * 1000 if clean else None
        scored = [r for r in runs if not r.get("eval_resumed")]
        evals = (sum(r["eval_s"] for r in scored) / sum(r["test_questions"] for r in scored) * 1000
                 if scored else None)
        loads = [r["load_average"] for r in runs if r.get("load_average") is not None]
        lines.append([v, VARIANTS[v].about if v in VARIANTS else runs[0]["method"], f"{runs[0]['trainable']:,}",
                      runs[0]["extra_tokens"], "–" if train is None else f"{train:.1f}",
                      "–" if evals is None else f"{evals:.1f}", f"{max(loads):.1f}" if loads else "–"])
    return _table(["variant", "what", "trainable", "extra tokens", "train s / 1k questions",
                   "eval s / 1k test questions", "highest load avg"], lines)


def paper_table(points: list[dict], variants: list[str], sizes: list[int]) -> str | None:
    """The paper's average beside the measured overall accuracy (largest training size) for the variants that
    carry one; None when none does."""
    known = [v for v in variants if v in VARIANTS and VARIANTS[v].paper is not None]
    if not known or not sizes:
        return None
    cell = {(p["variant"], p["size"]): _pm(p["overall"]) for p in points}
    lines = [[v, VARIANTS[v].paper_row, f"{VARIANTS[v].paper:.2f}", cell.get((v, sizes[-1]), "–")] for v in known]
    return _table(["variant", "paper's row", "paper: ScienceQA avg (LLaMA-7B)",
                   f"here: easy-VQA overall at {sizes[-1]:,}"], lines)


def separation_table(table: list[dict], reference: str) -> str:
    lines = []
    for row in table:
        versus = ", ".join(f"{v} {d['delta']:+.1f}{'*' if d['apart'] else ''}"
                           for v, d in row["vs_reference"].items())
        lines.append([f"{row['size']:,}", "–" if row["spread"] is None else f"{row['spread']:.1f}",
                      "–" if row["max_std"] is None else f"{row['max_std']:.1f}",
                      f"{len(row['apart'])} / {row['pairs']}", versus or "–"])
    return _table(["training questions", "spread of means", "largest seed std", "pairs apart",
                   f"Δ overall vs {reference} (* = beyond both seed spreads)"], lines)


def markdown(result: dict) -> str:
    """The whole report: setup, accuracy per metric, costs, and where variants stand apart."""
    c, points, rows = result["config"], result["points"], result["rows"]
    variants, sizes = result["variants"], result["sizes"]
    n_test = result["test_questions"]
    floor = result.get("floor")
    seeds = ", ".join(map(str, c["seeds"]))
    shares = ", ".join(f"{q} {w:g}" for q, w in c["question_weights"].items())
    typical = sum(r["overall"] for r in rows) / len(rows) if rows else 0.0
    parts = [
        f"Frozen {llm_name(c.get('llm'))} and easy-VQA CLIP tower; recipe `easyvqa-demo`, {c['epochs']} epoch(s)"
        + (f" or as many as {c['min_steps']} optimizer steps take" if c.get("min_steps") else "") + ", "
        f"batch {c['batch_size']}, lr {c['lr']:g}; training questions drawn per size and seed "
        f"(question-type shares {shares}"
        + (f", each spread evenly over {', '.join(c['balance_within'])}" if c.get("balance_within") else "")
        + f"), the same draw for every variant; {c.get('answer_style', 'word')} answers to yes/no questions"
        + (" (the asked attribute, then the verdict)" if c.get("answer_style") == "rationale" else "")
        + f"; {n_test:,} test questions "
        f"(seed {c['test_seed']}), the same for every run; seeds {seeds}"
        + (f"; backbone weights {result['backbones']}" if result.get("backbones") else "")
        + ". Cells: exact-match accuracy (%), mean ± sample std over seeds. "
        f"At the runs' mean accuracy ({typical:.1f}%), one accuracy on "
        f"{n_test:,} questions carries a test-sampling standard error of ±{test_error(typical, n_test):.1f} "
        "points (the same questions for every run, so it shifts runs together more than it separates them).",
    ]
    if floor:
        parts.append(f"Floor (frozen LLM, no image): {floor['overall']:.1f} overall, "
                     + ", ".join(f"{q} {metric(floor, q):.1f}" for q in METRICS[1:] if metric(floor, q) is not None)
                     + ".")
    for name in METRICS:
        if not any(p["variant"] in variants and p[name][0] is not None for p in points):
            continue  # runs recorded before the metric existed
        note = ("\n\nThe mean over (asks about colour or shape, negated or not, true answer) of the yes/no "
                "accuracy in each: 50 for answers read off the phrasing alone, whatever the label prior."
                if name == YES_NO_BALANCED else "")
        parts.append(f"#### Accuracy: {name}\n\n" + accuracy_table(points, variants, sizes, name) + note)
    if any(p["variant"] in variants and p[CONTRADICTING][0] is not None for p in points):
        parts.append("#### Yes/no: verdicts that contradict the model's own rationale\n\n"
                     + accuracy_table(points, variants, sizes, CONTRADICTING)
                     + "\n\nOf the yes/no answers written as a rationale (\"triangle, so no\"), the % whose verdict is "
                       "not the one the named attribute implies: the comparison failed, whatever the image shows "
                       "(0 for a model that compares what it names; – for runs recorded before the count).")
    beside = paper_table(points, variants, sizes)
    if beside:
        parts.append("#### Beside the paper\n\n" + beside
                     + "\n\nThe paper's numbers are ScienceQA test averages with LLaMA-7B (Tables I, VI–X); "
                       "another task, LLM and tower, so only the order of the rows compares.")
    parts.append("#### Cost\n\n" + cost_table(rows, variants)
                 + "\n\nSeconds from runs that were neither resumed nor interrupted; the load average was read "
                   "as each run started (an idle machine reads near 0).")
    sep = result["separation"]
    parts.append("#### Where the variants differ beyond the seed spread\n\n"
                 + separation_table(sep, result["reference"]) + f"\n\nOverall: {regime(sep)}.")
    return "\n\n".join(parts) + "\n"


def plot_curves(points: list[dict], variants: list[str], path: str | Path, title: str,
                floor: dict | None = None) -> Path:
    """Accuracy against training questions (log axis), mean ± std error bars, one panel per metric; at a
    single training size, one bar per variant instead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [name for name in METRICS
             if any(p["variant"] in variants and p[name][0] is not None for p in points)] or ["overall"]
    sizes = sorted({p["size"] for p in points if p["variant"] in variants})
    fig, axes = plt.subplots(1, len(shown), figsize=(4.0 * len(shown), 3.8), dpi=110, squeeze=False)
    axes = axes[0]
    try:
        for ax, name in zip(axes, shown):
            ax.set_title(f"{name} (50 = from the phrasing alone)" if name == YES_NO_BALANCED else name, fontsize=9)
            if len(sizes) == 1:  # one training size: a curve would be a column of dots, bars read better
                _bars(ax, points, variants, name)
                _reference_lines(ax, name, floor)
                ax.set_xlabel(f"{sizes[0]:,} training questions")
                continue
            for k, variant in enumerate(variants):
                mine = sorted((p for p in points if p["variant"] == variant and p[name][0] is not None),
                              key=lambda p: p["size"])
                if not mine:
                    continue
                xs = [p["size"] * (1 + 0.015 * (k - len(variants) / 2)) for p in mine]  # a nudge: bars stay apart
                ax.errorbar(xs, [p[name][0] for p in mine], yerr=[p[name][1] or 0.0 for p in mine],
                            marker="o", ms=3, capsize=3, lw=1.2, label=variant)
            _reference_lines(ax, name, floor)
            ax.set_xscale("log")
            ax.set_xticks(sizes, [f"{s:,}" for s in sizes])
            ax.minorticks_off()
            low, high = ax.get_ylim()
            ax.set_ylim(max(low, -1.0), min(high, 101.0))
            ax.set_xlabel("training questions")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("exact-match accuracy (%), mean ± std")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 8), fontsize=8, frameon=False)
        fig.suptitle("\n".join(textwrap.wrap(title, 120)), fontsize=9)
        fig.tight_layout(rect=(0, 0.1, 1, 0.94))
        path = Path(path)
        atomic_write_bytes(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)
    return path


def _bars(ax, points: list[dict], variants: list[str], name: str) -> None:
    """One bar per variant (mean, ± std whisker) for a comparison at a single training size."""
    import matplotlib.pyplot as plt

    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, variant in enumerate(variants):
        point = next((p for p in points if p["variant"] == variant and p[name][0] is not None), None)
        if point is not None:
            mean, std = point[name]
            ax.bar(k, mean, yerr=std or 0.0, capsize=3, color=colours[k % len(colours)], label=variant)
    ax.set_xticks([])
    ax.set_ylim(0.0, 101.0)
    ax.grid(axis="y", alpha=0.3)


def _reference_lines(ax, name: str, floor: dict | None) -> None:
    """The no-image floor (dashed) and, on the balanced yes/no panel, the 50 of answers read off the phrasing."""
    value = metric(floor, name) if floor else None
    if value is not None:
        ax.axhline(value, color="grey", lw=0.8, ls="--", label="no image (floor)")
    if name == YES_NO_BALANCED:
        ax.axhline(50.0, color="black", lw=0.8, ls=":")
