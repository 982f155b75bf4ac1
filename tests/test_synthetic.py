"""The synthetic dataset has the exact REACT 2024 layout, a dependency a model can learn, and REACT's
appropriateness: the neighbour matrix marks listeners whose reactions resemble the true one over time."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pandas as pd
import soundfile
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from regnn.data import layout
from regnn.data.synthetic import SyntheticSettings, write_dataset
from regnn.metrics import dtw
from regnn.metrics.react import FRD_WEIGHTS
from tests.conftest import TINY


def _emotion(root: Path, split: str, key: str) -> np.ndarray:
    return pd.read_csv(layout.emotion_path(root, split, key)).to_numpy()


def test_layout_matches_react_2024(tiny_dataset_master: Path) -> None:
    root = tiny_dataset_master
    for split in layout.SPLITS:
        rows = layout.read_split(root, split)
        assert len(rows) == 2 * TINY.clips_per_session  # one NoXI and one RECOLA session
        assert (root / f"{split}.csv").read_text().splitlines()[0] == ",speaker_path,listener_path"
        matrix = np.load(root / f"neighbour_emotion_{split}.npy")
        assert matrix.dtype == np.float64 and matrix.shape == (2 * len(rows),) * 2
        assert set(np.unique(matrix)) <= {0.0, 1.0} and np.all(np.diag(matrix) == 1)
        speakers, _ = layout.mirrored(rows)
        assert {k.split("/")[0] for k in speakers} == {"NoXI", "RECOLA"}
        for key in speakers:
            assert (root / split / "Video_files" / f"{key}.mp4").is_file()
            info = soundfile.info(str(root / split / "Audio_files" / f"{key}.wav"))
            assert info.samplerate == TINY.audio_rate and abs(info.duration - 30.02) < 1e-3
            assert layout.emotion_path(root, split, key).parent.name in {"P1", "P2"}
    key = layout.read_split(root, "train")[0][0]
    assert key.split("/")[2] == "Expert_video"
    assert (root / "train" / "Emotion" / key.rsplit("/", 2)[0] / "P1" / f"{key.rsplit('/', 1)[1]}.csv").is_file()


def test_video_is_h264_at_25_fps_with_751_frames(tiny_dataset_master: Path) -> None:
    key = layout.read_split(tiny_dataset_master, "test")[0][0]
    with av.open(str(tiny_dataset_master / "test" / "Video_files" / f"{key}.mp4")) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.average_rate == 25
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == layout.VIDEO_FRAMES and frames[0].shape == (TINY.frame_size, TINY.frame_size, 3)


def test_emotions_have_react_columns_and_ranges(tiny_dataset_master: Path) -> None:
    root = tiny_dataset_master
    speakers, _ = layout.mirrored(layout.read_split(root, "train"))
    table = pd.read_csv(layout.emotion_path(root, "train", speakers[0]))
    assert list(table.columns) == layout.EMOTION_COLUMNS and table.shape == (750, 25)
    all_zero_columns = 0
    for key in speakers:
        e = _emotion(root, "train", key)
        assert set(np.unique(e[:, :15])) <= {0.0, 1.0}
        assert np.all(np.abs(e[:, 15:17]) <= 1)
        assert np.all(e[:, 17:] >= 0) and np.allclose(e[:, 17:].sum(axis=1), 1, atol=1e-4)
        all_zero_columns += int((e[:, :15].max(axis=0) == 0).sum())
    assert all_zero_columns > 0


def test_some_precomputed_features_are_nested_one_folder_too_deep(tiny_dataset_master: Path) -> None:
    files = list((tiny_dataset_master / "train").glob("*_features/**/*.pth"))
    nested = [f for f in files if f.parent.name == f.stem]
    assert nested and len(nested) < len(files)


def test_deterministic_per_seed(tmp_path: Path) -> None:
    small = SyntheticSettings(seed=5, sessions={"train": 1}, clips_per_session=1, frame_size=16, audio_rate=8000)

    def digests(root: Path) -> dict[str, str]:
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file() and p.suffix in {".csv", ".npy", ".wav", ".mp4"}}

    write_dataset(tmp_path / "a", small)
    write_dataset(tmp_path / "b", small)
    write_dataset(tmp_path / "c", SyntheticSettings(**{**small.__dict__, "seed": 6}))
    a, b, c = (digests(tmp_path / name) for name in "abc")
    assert a.keys() == b.keys() == c.keys() and len(a) == 14  # 4 clips x 3 media + split CSV + matrix
    assert [f for f in a if a[f] != b[f]] == []
    assert [f for f in a if a[f] == c[f] and not f.endswith(".npy")] == ["train.csv"]  # same names only


def test_same_seed_same_bytes_in_concurrent_processes(tmp_path: Path) -> None:
    """Generations with one seed running at once in separate processes write identical files.

    The mp4 of a clip used to depend on what the heap held before: with x264's AVX-512 kernels and mb-tree
    rate control, the encoder reads memory it never wrote, so a busy machine (other allocations, other
    timing) occasionally gave a different file. MALLOC_PERTURB_ fills fresh and freed heap memory with a
    chosen byte, which reproduces such differences deterministically (seed 0 below differed in
    NoXI/001.../Novice_video/1.mp4 between 1 and 255 on an AVX-512 machine before the fix).
    """
    script = ("import sys; from regnn.data.synthetic import SyntheticSettings, write_dataset; "
              "write_dataset(sys.argv[1], SyntheticSettings(seed=0, sessions={'train': 1}, clips_per_session=1, "
              "audio_rate=8000))")
    perturb = ("1", "85", "255")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / p)],
                              env={**os.environ, "MALLOC_PERTURB_": p}) for p in perturb]
    assert [proc.wait(timeout=300) for proc in procs] == [0] * len(perturb)

    def digests(root: Path) -> dict[str, str]:
        return {f.relative_to(root).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
                for f in sorted(root.rglob("*")) if f.is_file()}

    first, *others = (digests(tmp_path / p) for p in perturb)
    assert sum(f.endswith(".mp4") for f in first) == 4
    for other in others:
        assert other.keys() == first.keys()
        assert [f for f in first if first[f] != other[f]] == []


def _lagged_corr(a: np.ndarray, b: np.ndarray, lag: int) -> float:
    """Correlation of a(t) with b(t + lag), for a negative lag too."""
    if lag < 0:
        return _lagged_corr(b, a, -lag)
    return float(np.corrcoef(a[: len(a) - lag], b[lag:])[0, 1])


def _split_emotions(root: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Speaker and listener emotions (2N, 750, 25) of the mirrored positions, and the neighbour matrix."""
    speakers, listeners = layout.mirrored(layout.read_split(root, split))
    return (np.stack([_emotion(root, split, k) for k in speakers]),
            np.stack([_emotion(root, split, k) for k in listeners]),
            np.load(root / f"neighbour_emotion_{split}.npy").astype(bool))


def test_listener_valence_follows_the_speakers_with_a_lag(tiny_dataset_master: Path) -> None:
    real, other = [], []
    for split in layout.SPLITS:
        speaker, listener, matrix = _split_emotions(tiny_dataset_master, split)
        for k in range(len(speaker)):
            j = int(np.flatnonzero(~matrix[k])[0])  # a listener of another scene
            valence = 15  # emotional contagion; the listener reacts 4-16 frames after the speaker
            real.append(max(_lagged_corr(speaker[k, :, valence], listener[k, :, valence], d) for d in range(21)))
            other.append(max(_lagged_corr(speaker[k, :, valence], listener[j, :, valence], d) for d in range(21)))
    assert np.mean(real) > np.mean(other) + 0.3


def _past_frames(x: np.ndarray, lags: range) -> np.ndarray:
    """(N * T, 25 * len(lags)): each frame's emotions `lag` frames earlier (the first frame repeated)."""
    t = np.arange(x.shape[1])
    return np.concatenate([x[:, np.clip(t - lag, 0, None)] for lag in lags], axis=-1).reshape(-1, 25 * len(lags))


def _mean_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over the attributes that vary in both (T, 25) series of their Pearson correlation."""
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    norms = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    return float(((a * b).sum(axis=0)[norms > 0] / norms[norms > 0]).mean())


def test_the_reaction_is_learnable_but_not_a_copy(tiny_dataset_master: Path) -> None:
    """A linear map of the speaker's last second predicts the listener better than the speaker itself does.

    Fitted on the train and val clips, scored on the test clips. On the earlier generator, where both
    persons expressed one conversation, the speaker itself (the mime baseline) was the better prediction.
    """
    lags = range(0, 25, 2)
    fit = [_split_emotions(tiny_dataset_master, split) for split in ("train", "val")]
    model = make_pipeline(StandardScaler(), Ridge(alpha=10.0)).fit(
        np.concatenate([_past_frames(speaker, lags) for speaker, _, _ in fit]),
        np.concatenate([listener.reshape(-1, 25) for _, listener, _ in fit]))
    speaker, listener, _ = _split_emotions(tiny_dataset_master, "test")
    predicted = model.predict(_past_frames(speaker, lags)).reshape(listener.shape)
    learned = np.mean([_mean_correlation(predicted[k], listener[k]) for k in range(len(listener))])
    mime = np.mean([_mean_correlation(speaker[k], listener[k]) for k in range(len(listener))])
    assert learned > 0.2 and learned > mime + 0.1


def test_media_are_driven_by_the_speakers_emotions(tiny_dataset_master: Path) -> None:
    root = tiny_dataset_master
    key = layout.read_split(root, "train")[0][0]
    emotions = _emotion(root, "train", key)
    with av.open(str(root / "train" / "Video_files" / f"{key}.mp4")) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])[:750].astype(float)
    brightness = frames[:, 8:24, 8:24, 0].mean(axis=(1, 2))  # the face's skin tone follows arousal
    assert np.corrcoef(brightness, emotions[:, 16])[0, 1] > 0.5
    audio, rate = soundfile.read(root / "train" / "Audio_files" / f"{key}.wav")
    per_frame = rate // 25
    loudness = np.sqrt((audio[: 750 * per_frame].reshape(750, per_frame) ** 2).mean(axis=1))
    assert np.corrcoef(loudness, emotions[:, 16])[0, 1] > 0.5


def test_appropriate_listeners_react_like_the_true_listener(tiny_dataset_master: Path) -> None:
    """REACT's matrix marks listeners whose reactions resemble the true one: closer in FRD's DTW than others."""
    near, far, nearest_is_appropriate = [], [], []
    for split in layout.SPLITS:
        _, listener, matrix = _split_emotions(tiny_dataset_master, split)
        n = len(listener)
        half = n // 2
        assert not matrix[np.arange(half), np.arange(half) + half].any()  # the partner is not a neighbour
        k, j = np.nonzero(~np.eye(n, dtype=bool))
        groups = dtw.dtw_groups(listener.astype(np.float32), listener.astype(np.float32), k, j, device="cpu")
        distance = np.full((n, n), np.inf)
        distance[k, j] = groups @ np.asarray(FRD_WEIGHTS)
        others = ~np.eye(n, dtype=bool)
        near.extend(distance[matrix & others])
        far.extend(distance[~matrix])
        nearest_is_appropriate.extend(matrix[np.arange(n), distance.argmin(axis=1)])
    assert near and far and np.mean(near) < 0.8 * np.mean(far)
    assert np.mean(nearest_is_appropriate) >= 0.75
