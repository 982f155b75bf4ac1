"""Training curves: one figure per experiment from its seeds' `train.tsv` (the `training_curves` rule).

Each panel is one column of the per-epoch log over epochs, every seed overlaid in its own colour: the total
loss and its parts (best-of-neighbours MSE, MidLoss, and the optional smoothness and log-det terms, drawn only
when some seed used them), the loss threshold (the previous epoch's mean loss / 3; losses below it count 0)
and the learning rate. Seeds that agree trace one curve; a seed that diverges or stalls stands out.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

from regnn.io import atomic_output  # noqa: E402

ALWAYS = ("loss", "best_mse", "threshold", "lr")
OPTIONAL = ("mid", "smooth", "logdet")
TITLES = {
    "loss": "total loss", "best_mse": "best-of-neighbours MSE", "mid": "MidLoss", "smooth": "smoothness loss",
    "logdet": "log-det term", "threshold": "loss threshold", "lr": "learning rate",
}


def read_train_tsv(path: Path) -> dict[str, list[float]]:
    """The per-epoch columns of one train.tsv as floats (an empty cell reads as NaN)."""
    path = Path(path)
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
    except OSError as err:
        raise ValueError(f"{path}: cannot read the training log ({err.strerror})") from None
    if not rows:
        raise ValueError(f"{path}: the training log has no epochs")
    missing = [c for c in ("epoch", *ALWAYS) if c not in rows[0]]
    if missing:
        raise ValueError(f"{path}: training log lacks column(s) {', '.join(missing)}")
    out: dict[str, list[float]] = {}
    for column in rows[0]:
        try:
            out[column] = [float(r[column]) if r[column] not in ("", None) else math.nan for r in rows]
        except ValueError:
            raise ValueError(f"{path}: column {column!r} holds a non-number") from None
    return out


def plot_training_curves(logs: Mapping[int, Path], path: Path, title: str = "") -> None:
    """One panel per logged quantity over epochs, one line per seed (`logs` maps seed -> train.tsv)."""
    runs = {seed: read_train_tsv(p) for seed, p in sorted(logs.items())}
    if not runs:
        raise ValueError(f"{path}: no training logs to plot")
    used = [c for c in OPTIONAL
            if any(v != 0 and not math.isnan(v) for run in runs.values() for v in run.get(c, []))]
    columns = ["loss", "best_mse", *used, "threshold", "lr"]
    ncols = min(3, len(columns))
    nrows = math.ceil(len(columns) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.6 * nrows), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, column in zip(axes.flat, columns):
        for k, (seed, run) in enumerate(runs.items()):
            ax.plot(run["epoch"], run[column], color=colours(k % 10), lw=1.2, marker="." if len(run["epoch"]) < 30
                    else None, label=f"seed {seed}")
        ax.set_title(TITLES[column], fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        values = [v for r in runs.values() for v in r[column] if not math.isnan(v)]
        if column in ("loss", "best_mse", "mid") and values and min(values) > 0 and max(values) > 10 * min(values):
            ax.set_yscale("log")  # only when the loss spans a decade; a log axis over a narrow range reads badly
        if column == "lr":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    for ax in list(axes.flat)[len(columns):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
