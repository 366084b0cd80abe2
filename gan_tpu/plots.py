"""`plots.png`: a run's losses per epoch (history.csv) and its MiFID/FID per evaluation.

Needs matplotlib (the `plots` extra; Kaggle's images have it): without it, no plot.
"""
from __future__ import annotations

import csv
import math
import os

LOSS_PANELS = (("generator", ("g_total", "g_adv", "g_loss")), ("cycle / identity", ("cycle", "identity")),
               ("discriminators", ("d_monet", "d_photo", "d_loss")))
NOT_LOSSES = {"epoch", "planned_steps", "steps_done", "fid", "distance", "mifid", "lr"}


def read_rows(path: str) -> list[dict]:
    """A CSV's rows with numeric values as floats (others dropped)."""
    if not os.path.isfile(path):
        return []
    rows = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            values = {}
            for key, value in row.items():
                try:
                    values[key] = float(value)
                except (TypeError, ValueError):
                    continue
            rows.append(values)
    return rows


def loss_groups(keys) -> list[tuple[str, list[str]]]:
    """Panels of loss columns: the known groups, then one panel of whatever else was logged."""
    keys = [k for k in keys if k not in NOT_LOSSES]
    panels, used = [], set()
    for title, names in LOSS_PANELS:
        present = [n for n in names if n in keys]
        if present:
            panels.append((title, present))
            used.update(present)
    rest = [k for k in keys if k not in used]
    if rest:
        panels.append(("other losses", rest))
    return panels


def write(run_dir: str, path: str | None = None) -> str | None:
    """Draw `plots.png` in `run_dir` from history.csv and eval/scores.csv; returns its path,
    or None when there is nothing to plot yet. Raises ImportError without matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    history = read_rows(os.path.join(run_dir, "history.csv"))
    scores = [r for r in read_rows(os.path.join(run_dir, "eval", "scores.csv")) if "epoch" in r]
    if not history and not scores:
        return None
    keys = list(history[0]) if history else []
    panels = loss_groups(keys)
    n = len(panels) + (1 if scores else 0)
    cols = min(2, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.4 * cols, 3.6 * rows), squeeze=False)
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(history)]  # from 1, as the grids
    for ax, (title, names) in zip(axes.flat, panels):
        for name in names:
            ax.plot(epochs, [r.get(name, math.nan) for r in history], marker="o", markersize=3, label=name)
        ax.set_title(f"{title} (per epoch)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if scores:
        ax = axes.flat[len(panels)]
        x = [r["epoch"] for r in scores]
        for name, style in (("mifid", "o-"), ("fid", "s--")):
            values = [r.get(name, math.nan) for r in scores]
            if any(not math.isnan(v) for v in values):
                ax.plot(x, values, style, markersize=4, label=name.upper().replace("MIFID", "MiFID"))
        trained = [r for r in scores if r["epoch"] > 0] or scores  # epoch 0: before training
        best = min(trained, key=lambda r: r.get("mifid", r.get("fid", math.inf)))
        ax.axvline(best["epoch"], color="grey", linestyle=":", label=f"best: epoch {best['epoch']:.0f}")
        ax.set_title("held-out photos vs Monet (lower is better)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("score")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(os.path.basename(os.path.abspath(run_dir)))
    fig.tight_layout()
    path = path or os.path.join(run_dir, "plots.png")
    tmp = path[: -len(".png")] + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path
