"""Training curves: every seed's train.tsv in one figure; a broken log is named in the error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from regnn.curves import plot_training_curves, read_train_tsv

HEADER = "epoch\tlr\tloss\tbest_mse\tmid\tsmooth\tlogdet\tthreshold\tseconds\tinput_seconds\n"


def _log(path: Path, epochs: int, scale: float) -> Path:
    rows = [f"{e}\t0.001\t{scale / e}\t{scale / e}\t0.0\t0.0\t0.0\t{0 if e == 1 else scale / (e - 1) / 3}\t1\t0.1"
            for e in range(1, epochs + 1)]
    path.write_text(HEADER + "\n".join(rows) + "\n")
    return path


def test_curves_overlay_seeds(tmp_path: Path) -> None:
    import matplotlib.image

    out = tmp_path / "curves.png"
    plot_training_curves({1: _log(tmp_path / "a.tsv", 5, 1.0), 2: _log(tmp_path / "b.tsv", 5, 2.0)}, out, "x")
    image = matplotlib.image.imread(out)
    assert image.shape[0] > 200 and image.shape[1] > 600
    # two seeds in two colours: tab10's blue and orange both appear
    rgb = (image[..., :3] * 255).astype(int)
    for colour in ((31, 119, 180), (255, 127, 14)):
        assert (np.abs(rgb - colour).sum(-1) < 30).sum() > 50, colour


def test_read_train_tsv_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "train.tsv"
    bad.write_text("epoch\tloss\n1\t0.5\n")
    with pytest.raises(ValueError, match=r"train\.tsv.*lacks column\(s\) best_mse, threshold, lr"):
        read_train_tsv(bad)
    bad.write_text(HEADER + "1\tx\t1\t1\t0\t0\t0\t0\t1\t1\n")
    with pytest.raises(ValueError, match="'lr' holds a non-number"):
        read_train_tsv(bad)
    with pytest.raises(ValueError, match="cannot read"):
        read_train_tsv(tmp_path / "missing.tsv")
