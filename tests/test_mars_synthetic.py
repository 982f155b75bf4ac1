"""The synthetic MARS set carries a learnable dependency: listeners follow their speaker with a lag, the
session rule's appropriate reactions resemble the true one, and the speaker's video shows its behaviour."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from regnn.data import mars
from regnn.data.mars_synthetic import MarsSyntheticSettings, _quadrant_colours, write_mars_dataset

SETTINGS = MarsSyntheticSettings(seed=4, sessions={"test": 4}, stems_per_session=(3, 4), frames=(120, 160),
                                 coefficients=False, junk=False)
VA = slice(15, 17)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("mars-synthetic") / "mars"
    write_mars_dataset(root, SETTINGS)
    base = root / "test" / mars.ATTRIBUTES
    return root, {str(p.relative_to(base).with_suffix("")): np.load(p) for p in sorted(base.glob("*/*/*.npy"))}


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.mean([np.corrcoef(a[:n, d], b[:n, d])[0, 1] for d in range(a.shape[1])]))


def test_listeners_of_a_session_resemble_the_true_listener(clips) -> None:
    _, series = clips
    listeners = {k: v[:, VA] for k, v in series.items() if k.startswith("listener/")}
    same, other = [], []
    for key, values in listeners.items():
        session = key.split("/")[1]
        for k2, v2 in listeners.items():
            if k2 != key:
                (same if k2.split("/")[1] == session else other).append(_corr(values, v2))
    assert np.mean(same) > np.mean(other) + 0.3, (np.mean(same), np.mean(other))


def test_listener_reacts_to_its_speaker_with_a_lag_but_does_not_copy_it(clips) -> None:
    _, series = clips
    gains, valence = [], []
    for key in (k for k in series if k.startswith("speaker/")):
        speaker, listener = series[key], series[mars.partner_key(key)]
        arousal = speaker[:, 16:17], listener[:, 16:17]
        lagged = max(_corr(arousal[0][:-lag], arousal[1][lag:]) for lag in range(3, 12))
        gains.append(lagged - _corr(arousal[0][3:], arousal[1][:-3]))  # the listener lags, it does not lead
        valence.append(max(_corr(speaker[:-lag, 15:16], listener[lag:, 15:16]) for lag in range(3, 12)))
    assert np.mean(gains) > 0.05 and min(gains) > -0.05, gains
    assert np.mean(valence) < -0.2, valence  # valence is mirrored: the reaction is not a copy


def test_speaker_video_shows_the_attributes(clips) -> None:
    root, series = clips
    key = next(k for k in series if k.startswith("speaker/"))
    with av.open(str(root / "test" / mars.VIDEO / f"{key}.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == len(series[key])
    half = frames[0].shape[0] // 2
    shown = np.array([[f[:half, :half].mean((0, 1)), f[:half, half:].mean((0, 1)), f[half:, :half].mean((0, 1)),
                       f[half:, half:].mean((0, 1))] for f in frames]) / 255
    expected = np.array([_quadrant_colours(row) for row in series[key]])
    assert np.abs(shown - expected).mean() < 0.05
    assert np.corrcoef(shown[:, 0, 0], series[key][:, 15])[0, 1] > 0.9  # valence
