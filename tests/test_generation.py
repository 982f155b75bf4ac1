"""Generation: overlap-averaging, noise clipping, the predictions file, the official export, and a
short training whose samples beat a random baseline on FRC (a plain CCC-based FRC computed here)."""

from __future__ import annotations


import h5py
import numpy as np
import pytest
import torch
from model_toy import TINY_MODEL, toy_split, tiny_train

from regnn.feature_store import write_shard
from regnn.generation import clip_noise, export_official, generate, overlap_average, select_checkpoint
from regnn.training import train


def test_overlap_average_matches_the_reference_layout():
    rng = torch.Generator().manual_seed(0)
    windows = torch.randn(29, 50, 25, generator=rng)
    merged = overlap_average(windows, 25)
    assert merged.shape == (750, 25)
    assert torch.equal(merged[:25], windows[0, :25])  # first half of window 0 alone
    assert torch.allclose(merged[25:50], (windows[0, 25:] + windows[1, :25]) / 2)
    assert torch.allclose(merged[350:375], (windows[13, 25:] + windows[14, :25]) / 2)
    assert torch.equal(merged[725:], windows[28, 25:])  # second half of the last window alone
    # a constant-per-frame signal cut into windows is reassembled exactly
    signal = torch.arange(750.0)[:, None].expand(750, 3)
    cut = torch.stack([signal[s:s + 50] for s in range(0, 701, 25)])
    assert torch.equal(overlap_average(cut[None, None], 25)[0, 0], signal)
    assert torch.equal(overlap_average(cut[::2][:14], 50), signal[:700])  # stride == window: concatenation


def test_noise_is_clipped_per_clip_sample():
    noise = torch.stack([torch.full((3, 4), 2.0), torch.full((3, 4), 0.1)])
    noise[0, 0, 0] = -4.0
    clipped = clip_noise(noise, 0.06)
    assert clipped[0].abs().max() == pytest.approx(0.06 ** 0.5)
    assert torch.allclose(clipped[0], noise[0] * 0.06 ** 0.5 / 4)  # rescaled, shape kept
    assert torch.equal(clipped[1], noise[1])  # already within the bound
    assert torch.equal(clip_noise(noise, None), noise)


def _ccc(truth: np.ndarray, pred: np.ndarray) -> float:
    mt, mp = truth.mean(0), pred.mean(0)
    cov = ((truth - mt) * (pred - mp)).mean(0)
    return float(np.mean(2 * cov / (truth.var(0) + pred.var(0) + (mt - mp) ** 2 + 1e-8)))


def _frc(pred: np.ndarray, listener: np.ndarray, neighbours: np.ndarray) -> float:
    return float(np.mean([sum(max(_ccc(listener[j], p) for j in np.flatnonzero(neighbours[k])) for p in pred[k])
                          for k in range(len(pred))]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("gen")
    toy = toy_split(root / "data")
    out = root / "run"
    train(toy["emotions"], toy["video"], toy["audio"],
          {"model": TINY_MODEL, "train": tiny_train(epochs=6, batches_per_epoch=12, checkpoint_every=3)}, 1,
          out / "checkpoints", out / "train.tsv", out / "tb", out / ".resume", threads=1)
    return {**toy, "root": root, "checkpoints": out / "checkpoints"}


def test_generated_reactions_beat_random_on_frc(trained):
    out = trained["root"] / "pred.h5"
    checkpoint = select_checkpoint(trained["checkpoints"], None)
    assert checkpoint.name == "after-006-epochs.pt"
    generate(checkpoint, trained["emotions"], trained["video"], trained["audio"],
             {"samples": 3, "batch_clips": 5, "device": "cpu"}, 7, out, threads=1)
    with h5py.File(out) as f:
        preds = f["predictions"][()]
        clips = [c.decode() for c in f["clips"][()]]
    assert preds.shape == (12, 3, 750, 25) and preds.dtype == np.float32 and np.isfinite(preds).all()
    assert clips == trained["clips"]
    assert not np.allclose(preds[:, 0], preds[:, 1])  # samples differ
    listener = trained["arrays"][trained["listener_index"]]
    model_frc = _frc(preds, listener, trained["neighbours"])
    random = np.random.default_rng(0).uniform(0, 1, preds.shape).astype(np.float32)
    random_frc = _frc(random, listener, trained["neighbours"])
    assert model_frc > random_frc + 0.1, (model_frc, random_frc)

    again = trained["root"] / "again.h5"  # same seed, other batching: identical samples
    generate(checkpoint, trained["emotions"], trained["video"], trained["audio"],
             {"samples": 3, "batch_clips": 12, "device": "cpu"}, 7, again, threads=1)
    with h5py.File(again) as f:
        np.testing.assert_allclose(f["predictions"][()], preds, atol=1e-5)

    official = trained["root"] / "official" / "test"
    export_official(out, official)
    first = torch.load(official / clips[0] / "result-2.pth", weights_only=True)
    assert first.shape == (750, 25) and first.device.type == "cpu"
    assert torch.equal(first, torch.from_numpy(preds[0, 2]))
    assert len(list(official.rglob("*.pth"))) == 12 * 3


def test_feature_dims_must_match_the_checkpoint(trained, tmp_path):
    wrong = tmp_path / "video.h5"
    write_shard(wrong, {c: np.zeros((750, 5), np.float32) for c in trained["clips"]}, "other", {})
    with pytest.raises(ValueError, match="feature dims"):
        generate(select_checkpoint(trained["checkpoints"], 3), trained["emotions"], [wrong], trained["audio"],
                 {"samples": 1}, 1, tmp_path / "p.h5")
    assert not (tmp_path / "p.h5").exists()


def test_generation_does_not_import_training() -> None:
    """The checkpoint format lives in regnn.checkpoints; generating needs nothing of the training loop."""
    import subprocess
    import sys

    code = "import sys, regnn.generation; print('regnn.training' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                          text=True).stdout.strip() == "False"
