"""A plainly written evaluation the way the official REACT `evaluation.py` works, as its own process.

    .venv/bin/python benchmarks/official_way.py DATA_DIR PRED_DIR SPLIT [--samples 10] [--processes 2]

Imports what the official script imports (torch, pandas, numpy, tslearn), reads every file the way it does
(the split CSV and every Emotion CSV with pandas, the neighbour matrix with numpy, each `result-{j}.pth` with
torch.load), scores with `regnn.metrics.reference` (one tslearn DTW per group and pair, a process pool), and
prints the official two lines. `benchmarks/evaluate.py` times it against `regnn evaluate` end to end; the
official script itself cannot ship here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from regnn.data import layout
from regnn.metrics.evaluate import official_lines
from regnn.metrics.reference import official_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("pred_dir", type=Path)
    parser.add_argument("split")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()

    rows = pd.read_csv(args.data_dir / f"{args.split}.csv", header=0, index_col=0)
    speakers = list(rows["speaker_path"]) + list(rows["listener_path"])  # the mirrored 2N samples
    emotions = np.stack([pd.read_csv(layout.emotion_path(args.data_dir, args.split, key), header=0)
                         .to_numpy(dtype=np.float32) for key in speakers])
    listener = emotions[(np.arange(len(speakers)) + len(rows)) % len(speakers)]
    neighbours = np.load(args.data_dir / f"neighbour_emotion_{args.split}.npy")
    pred = np.stack([np.stack([torch.load(args.pred_dir / args.split / key / f"result-{j}.pth").numpy()
                               for j in range(args.samples)]) for key in speakers])
    metrics = official_metrics(pred, emotions, listener, neighbours, processes=args.processes)
    print("\n".join(official_lines(metrics)))


if __name__ == "__main__":
    main()
