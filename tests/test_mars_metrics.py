"""The 2025/2026 metric set: per-clip definitions against a plain official-style implementation, the target
resampling, and every bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from regnn.metrics import mars, mars_reference, reference
from regnn.metrics.react import MetricInputError


def _series(rng: np.random.Generator, n: int, frames: int) -> np.ndarray:
    t = np.arange(frames)[None, :, None]
    wave = np.sin(rng.uniform(0.01, 0.1, (n, 1, 25)) * t + rng.uniform(0, 6, (n, 1, 25)))
    wave = wave + 0.3 * rng.standard_normal((n, frames, 25))
    out = np.empty((n, frames, 25), dtype=np.float32)
    out[..., :15] = wave[..., :15] > 0.5
    out[..., 15:17] = np.tanh(wave[..., 15:17])
    e = np.exp(wave[..., 17:])
    out[..., 17:] = e / e.sum(-1, keepdims=True)
    return out


def _clips(seed: int = 0, lengths: tuple[int, ...] = (58, 97, 140), samples: int = 4) -> list[mars.ClipInput]:
    rng = np.random.default_rng(seed)
    out = []
    for k, frames in enumerate(lengths):
        targets = list(_series(rng, 1 + k, frames))
        targets.append(_series(rng, 1, frames + 7)[0])  # a target of another length gets resampled
        pred = _series(rng, samples, frames)
        pred[0, :, 3] = 0  # a constant dim: CCC counts 0, TLCC's NaN quirk applies
        out.append(mars.ClipInput(f"speaker/session{k}/s{k}", pred, _series(rng, 1, frames)[0], targets))
    return out


def test_metric_set_matches_the_official_way_per_clip() -> None:
    clips = _clips()
    ours = mars.compute_metrics(clips, device="cpu", threads=2)
    aligned = [np.stack([mars.interpolate(t, len(c.speaker)) for t in c.targets]) for c in clips]
    reference.frd_pair(clips[0].pred[0], aligned[0][0])  # JIT tslearn once here; the forked pool inherits it
    ref = mars_reference.official_metrics([c.speaker for c in clips], [c.pred for c in clips], aligned)
    assert ours["resampling"] == "interpolate"
    assert list(ours) == [*mars.METRICS, "resampling"] and "FRDvs" not in ours
    for m in mars.METRICS:
        assert ours[m] == pytest.approx(ref[m], rel=1e-4, abs=1e-6), m


def test_smse_is_normalised_by_each_clips_own_length() -> None:
    """Two clips with the same per-frame spread but different lengths give the same S-MSE."""
    rng = np.random.default_rng(1)
    short = rng.random((3, 60, 25)).astype(np.float32)
    long = np.concatenate([short, short], axis=1)
    speaker = rng.random((60, 25)).astype(np.float32)
    a = mars.score_clip(mars.ClipInput("a", short, speaker, [short[0]]))
    b = mars.score_clip(mars.ClipInput("b", long, np.concatenate([speaker, speaker]), [long[0]]))
    assert a["S-MSE"] == pytest.approx(b["S-MSE"], rel=1e-6)
    assert a["S-MSE"] > 0


def test_frvar_gives_every_clip_equal_weight() -> None:
    rng = np.random.default_rng(2)
    flat = np.full((2, 500, 25), 0.5, dtype=np.float32)  # long and constant: variance 0
    varied = rng.random((2, 60, 25)).astype(np.float32)
    clips = [mars.ClipInput("a", flat, flat[0], [flat[0]]), mars.ClipInput("b", varied, varied[0], [varied[0]])]
    value = mars.compute_metrics(clips)["FRVar"]
    assert value == pytest.approx(torch.var(torch.from_numpy(varied), dim=1).mean().item() / 2, rel=1e-5)


def test_interpolate_rebinarises_aus_and_renormalises_expressions() -> None:
    rng = np.random.default_rng(3)
    target = _series(rng, 1, 75)[0]
    out = mars.interpolate(target, 200)
    assert out.shape == (200, 25) and out.dtype == np.float32
    assert set(np.unique(out[:, :15])) <= {0.0, 1.0}
    np.testing.assert_allclose(out[:, 17:].sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(out[[0, -1]], target[[0, -1]], rtol=1e-6)  # the ends map onto the ends
    assert np.array_equal(mars.interpolate(target, 75), target)  # equal lengths: unchanged


class _Stretch(torch.nn.Module):
    """A stand-in autoencoder: nearest-frame stretch, outputs as logits (AU 1 -> +5, 0 -> -5)."""

    def forward(self, x: torch.Tensor, length: int) -> torch.Tensor:
        idx = torch.div(torch.arange(length) * x.shape[1], length, rounding_mode="floor")
        y = x[:, idx].clone()
        y[..., :15] = y[..., :15] * 10 - 5
        y[..., 17:] = torch.log(y[..., 17:].clamp_min(1e-6))
        return y


def test_autoencoder_checkpoint_resamples_targets_and_is_named(tmp_path: Path) -> None:
    path = tmp_path / "post_processor.pt"
    torch.jit.save(torch.jit.script(_Stretch()), str(path))
    resample, name = mars.resampler({"checkpoint": str(path)})
    assert name == "autoencoder:post_processor.pt"
    target = _series(np.random.default_rng(4), 1, 50)[0]
    out = resample(target, 100)
    np.testing.assert_array_equal(out[::2, :15], target[:, :15])
    np.testing.assert_allclose(out[::2, 17:], target[:, 17:], rtol=1e-4, atol=1e-6)
    clips = _clips(lengths=(60,))
    assert mars.compute_metrics(clips, {"checkpoint": str(path)})["resampling"] == name


def test_a_bad_resampling_checkpoint_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "checkpoint.pth"
    torch.save({"state_dict": {}}, bad)
    with pytest.raises(MetricInputError, match="checkpoint.pth: not a TorchScript"):
        mars.resampler({"checkpoint": str(bad)})


@pytest.mark.parametrize("damage, message", [
    (lambda c: mars.ClipInput(c.key, c.pred[:, :-1], c.speaker, c.targets), "the speaker clip's length"),
    (lambda c: mars.ClipInput(c.key, c.pred[:, :40], c.speaker[:40], c.targets), "TLCC's lags"),
    (lambda c: mars.ClipInput(c.key, c.pred[..., :24], c.speaker, c.targets), "expected (samples, frames, 25)"),
    (lambda c: mars.ClipInput(c.key, np.where(c.pred > 0.9, np.nan, c.pred), c.speaker, c.targets), "NaN"),
    (lambda c: mars.ClipInput(c.key, c.pred, c.speaker, []), "no target"),
])
def test_bad_clip_inputs_name_the_clip(damage, message: str) -> None:
    clip = damage(_clips(lengths=(80,))[0])
    with pytest.raises(MetricInputError, match=r"speaker/session0/s0") as err:
        mars.compute_metrics([clip])
    assert message in str(err.value)


def test_no_clip_is_an_error() -> None:
    with pytest.raises(MetricInputError, match="no clip"):
        mars.compute_metrics([])
