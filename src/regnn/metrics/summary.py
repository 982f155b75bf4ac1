"""The per-split results table (TSV + LaTeX) and its figures: the `summarize` rule.

One row per experiment (mean and sample std over seeds) and one per baseline. Figures: every method on
every metric, and generated vs true reactions for a few clips (the samples drawn as a band).
"""

from __future__ import annotations

import csv
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402

from regnn import protocols  # noqa: E402
from regnn.data.layout import EMOTION_COLUMNS  # noqa: E402
from regnn.io import atomic_output  # noqa: E402
from regnn.metrics.evaluate import read_metrics  # noqa: E402
from regnn.metrics.settings import DEFAULTS  # noqa: E402
from regnn.metrics import mars, react  # noqa: E402
from regnn.settings import resolve  # noqa: E402

ALL_METRICS = tuple(dict.fromkeys((*react.METRICS, *mars.METRICS, *react.CORRECTED)))
"""Every column either protocol's metrics TSV can hold; a table shows those its rows have."""
DECIMALS = {"FRC": 2, "FRD": 2, "S-MSE": 4, "FRVar": 4, "FRDvs": 4, "TLCC": 2, "TLCC_corrected": 2, "MAE": 4}
"""As the official LaTeX line prints them."""
LOWER_IS_BETTER = {"FRD", "TLCC", "TLCC_corrected"}
FIGURE_ATTRIBUTES = ("valence", "arousal", "AU12", "AU25")


def summarize_rows(runs: Mapping[str, Sequence[Path]], baselines: Mapping[str, Path]) -> list[dict]:
    """Table rows: experiments (mean/std over their seeds' TSVs), then baselines."""
    rows = []
    for name, paths in runs.items():
        values = [read_metrics(p) for p in paths]
        columns = [c for c in ALL_METRICS if all(c in v for v in values)]
        row: dict = {"method": name, "type": "experiment", "runs": len(values)}
        if len({v.get("resampling") for v in values}) == 1 and "resampling" in values[0]:
            row["resampling"] = values[0]["resampling"]
        for c in columns:
            x = np.array([v[c] for v in values])
            row[c] = float(x.mean())
            row[f"{c}_std"] = float(x.std(ddof=1)) if len(x) > 1 else math.nan
        rows.append(row)
    for name, path in baselines.items():
        values = read_metrics(path)
        rows.append({"method": name, "type": "baseline", "runs": 1, **values})
    return rows


def _columns(rows: Sequence[dict]) -> list[str]:
    metrics = [c for c in ALL_METRICS if any(c in r for r in rows)]
    extra = [c for c in ("resampling", "note") if any(c in r for r in rows)]
    return ["method", "type", "runs"] + [x for c in metrics for x in (c, f"{c}_std")] + extra


def write_table(rows: Sequence[dict], path: Path) -> None:
    """TSV: method, type, runs, then each metric's mean and std (empty where there is no spread)."""
    columns = _columns(rows)
    with atomic_output(path) as tmp:
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f, delimiter="\t", lineterminator="\n")
            writer.writerow(columns)
            for r in rows:
                cells = []
                for c in columns:
                    v = r.get(c, math.nan)
                    cells.append("" if isinstance(v, float) and math.isnan(v) else v)
                writer.writerow(cells)


def _latex_escape(text: str) -> str:
    return text.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")


def write_latex(rows: Sequence[dict], path: Path, split: str, note: str = "") -> None:
    """A booktabs table; experiments as mean ± std over seeds, with the official decimals."""
    metrics = [c for c in ALL_METRICS if any(c in r for r in rows)]
    arrows = {c: (r"$\downarrow$" if c in LOWER_IS_BETTER else r"$\uparrow$") for c in metrics}
    lines = [
        r"\begin{table}[t]", r"\centering",
        rf"\caption{{REACT metrics on the {_latex_escape(split)} split (experiments: mean $\pm$ std over seeds)."
        + (f" {_latex_escape(note)}." if note else "") + "}",
        r"\begin{tabular}{l" + "r" * len(metrics) + "}", r"\toprule",
        "Method & " + " & ".join(f"{_latex_escape(c)} {arrows[c]}" for c in metrics) + r" \\", r"\midrule",
    ]
    for r in rows:
        cells = []
        for c in metrics:
            if c not in r:
                cells.append("--")
                continue
            cell = f"{r[c]:.{DECIMALS[c]}f}"
            std = r.get(f"{c}_std", math.nan)
            if not math.isnan(std):
                cell += rf" $\pm$ {std:.{DECIMALS[c]}f}"
            cells.append(cell)
        lines.append(_latex_escape(str(r["method"])) + " & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    with atomic_output(path) as tmp:
        tmp.write_text("\n".join(lines))


def _save(fig: plt.Figure, path: Path) -> None:
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_methods(rows: Sequence[dict], path: Path) -> None:
    """One bar chart per metric, every method side by side (error bars: std over seeds)."""
    metrics = [c for c in ALL_METRICS if any(c in r for r in rows)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.6 * len(metrics), 3.2), squeeze=False)
    names = [str(r["method"]) for r in rows]
    colours = ["tab:blue" if r["type"] == "experiment" else "tab:gray" for r in rows]
    for ax, c in zip(axes[0], metrics):
        values = [r.get(c, math.nan) for r in rows]
        errors = [0.0 if math.isnan(e := r.get(f"{c}_std", math.nan)) else e for r in rows]
        ax.bar(range(len(rows)), values, yerr=errors, color=colours, capsize=3)
        ax.set_title(f"{c} ({'lower' if c in LOWER_IS_BETTER else 'higher'} is better)", fontsize=9)
        ax.set_xticks(range(len(rows)), names, rotation=60, ha="right", fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def plot_reactions(predictions_h5: Path, emotions_h5: Path, path: Path, clips: int = 3, title: str = "",
                   protocol: str | None = None) -> None:
    """Generated vs true listener reactions for the first `clips` clips: samples as a min-max band. Each
    clip has its own time axis (MARS clips differ in length, and a true listener in length from its speaker)."""
    chosen = protocols.get(protocol)
    series = list(chosen.reaction_series(predictions_h5, emotions_h5, clips))
    shown = len(series)
    dims = [EMOTION_COLUMNS.index(a) for a in FIGURE_ATTRIBUTES]
    fig, axes = plt.subplots(shown, len(dims), figsize=(3.2 * len(dims), 2.2 * shown), squeeze=False)
    for k, (key, pred, truth) in enumerate(series):
        t = np.arange(pred.shape[1]) / chosen.fps
        for ax, d in zip(axes[k], dims):
            ax.fill_between(t, pred[:, :, d].min(0), pred[:, :, d].max(0), color="tab:blue", alpha=0.25,
                            lw=0, label=f"{pred.shape[0]} samples")
            ax.plot(t, pred[:, :, d].mean(0), color="tab:blue", lw=0.8, label="sample mean")
            ax.plot(np.arange(len(truth)) / chosen.fps, truth[:, d], color="black", lw=0.8, label="true listener")
            if k == 0:
                ax.set_title(EMOTION_COLUMNS[d], fontsize=9)
            if d == dims[0]:
                ax.set_ylabel("\n".join(textwrap.wrap(key, 24)), fontsize=6)
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    axes[0][0].legend(fontsize=7, loc="upper right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def reduced_split_note(skipped: Path | None) -> str:
    """'computed on a reduced split ...' when `data.incomplete: skip` dropped samples, else ''."""
    if skipped is None:
        return ""
    with Path(skipped).open(newline="") as f:
        dropped = sum(1 for row in list(csv.reader(f, delimiter="\t"))[1:] if row and row[0])
    return f"computed on a reduced split: {dropped} sample(s) skipped, see {skipped}" if dropped else ""


def summarize(split: str, runs: Mapping[str, Sequence[Path]], baselines: Mapping[str, Path], table: Path,
              latex: Path, methods_figure: Path, reactions: Mapping[str, tuple[Path, Path]], emotions_h5: Path,
              settings: Mapping | None = None, skipped: Path | None = None,
              protocol: str | None = None) -> list[dict]:
    """The `summarize` rule. `reactions` maps experiment -> (its predictions HDF5, the figure to write);
    `settings` is the `summary` part of the config's `evaluate` section; `skipped` is the split's
    skipped.tsv under `data.incomplete: skip` (every row then carries the reduced-split note)."""
    s = resolve(DEFAULTS["summary"], settings, "evaluate.summary")
    rows = summarize_rows(runs, baselines)
    note = reduced_split_note(skipped)
    if note:
        rows = [{**r, "note": note} for r in rows]
    write_table(rows, table)
    write_latex(rows, latex, split, note)
    plot_methods(rows, methods_figure)
    for experiment, (predictions, figure) in reactions.items():
        plot_reactions(predictions, emotions_h5, figure, int(s["figure_clips"]), title=f"{experiment} ({split})",
                       protocol=protocol)
    return rows
