"""A synthetic dataset in the exact REACT 2024 layout, with a dependency a model can learn.

Each dyad's two persons follow each other: a person's latent behaviour is their own smooth process plus the
partner's process delayed by a person-specific lag, plus a mood set by the person's own "style" in this clip
and by how they react to the partner's style, plus person-specific bias and gain. Emotions (AUs, valence/arousal, expression probabilities) are read off the
latent; the video draws a face whose brows, eyes, mouth and colour move with the emotions; the audio's pitch
follows valence and its loudness arousal and mouth opening. Speakers of the same style behave alike and
draw alike reactions, so the neighbour matrix marks them as each other's appropriate reactions. The two
persons of a clip always differ in style, so mimicking the speaker is not an appropriate reaction. A model that reads the speaker's media can
therefore predict the listener better than random or mime baselines.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import soundfile
import torch

from regnn.data.layout import (EMOTION_COLUMNS, FEATURE_FOLDERS, FPS, FRAMES, SPLIT_HEADER, SPLITS, ClipKey,
                               audio_path, emotion_path, features_path, neighbour_matrix_path, split_csv,
                               video_path)

LATENT = 4  # valence, arousal, smile, brow
STYLES = 4
PRECOMPUTED_DIMS = {"Video_features": 32, "Audio_features": 16}
CITIES = ("Paris", "Nottingham", "Augsburg")
RECOLA_PAIRS = (("P25", "P26"), ("P41", "P42"), ("P45", "P46"))


@dataclass(frozen=True)
class SyntheticSettings:
    """Size and seed of a synthetic dataset (the `demo_data` config section)."""

    seed: int = 0
    sessions: dict[str, int] = field(default_factory=lambda: {"train": 4, "val": 1, "test": 2})
    clips_per_session: int = 2
    frame_size: int = 64
    audio_rate: int = 16000


@dataclass(frozen=True)
class _Person:
    bias: np.ndarray  # (LATENT,)
    gain: float
    lag: int  # frames this person's reaction trails the partner
    au_bias: np.ndarray  # (15,)
    silent_aus: np.ndarray  # AU columns this person never activates (all-zero columns; often empty)


@dataclass(frozen=True)
class _Mixing:
    """Fixed maps from latent behaviour to emotions and precomputed features, shared by all persons."""

    au: np.ndarray  # (15, LATENT)
    expression: np.ndarray  # (8, LATENT)
    styles: np.ndarray  # (STYLES, LATENT) a speaker's mood in each style
    reactions: np.ndarray  # (STYLES, LATENT) the mood each style draws from the partner
    features: dict[str, np.ndarray]  # folder -> (25, D)


def _smooth_noise(rng: np.random.Generator, length: int, rho: float = 0.96) -> np.ndarray:
    """AR(1) noise with unit stationary variance, shape (length, LATENT)."""
    eps = rng.standard_normal((length, LATENT)) * np.sqrt(1 - rho**2)
    out = np.empty_like(eps)
    out[0] = rng.standard_normal(LATENT)
    for t in range(1, length):
        out[t] = rho * out[t - 1] + eps[t]
    return out


def _person(rng: np.random.Generator) -> _Person:
    return _Person(
        bias=rng.normal(0, 0.3, LATENT),
        gain=float(rng.uniform(0.7, 1.3)),
        lag=int(rng.integers(4, 17)),
        au_bias=rng.normal(-0.3, 0.4, 15),
        silent_aus=rng.choice(15, size=int(rng.integers(1, 3)) if rng.random() < 0.3 else 0, replace=False),
    )


def _emotions(latent: np.ndarray, person: _Person, mix: _Mixing) -> np.ndarray:
    """(T, 25) emotions: binary AUs, valence/arousal in [-1, 1], expression probabilities summing to 1."""
    aus = ((latent @ mix.au.T + person.au_bias) > 0).astype(np.float64)
    aus[:, person.silent_aus] = 0.0
    valence_arousal = np.tanh(latent[:, :2])
    logits = latent @ mix.expression.T
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return np.concatenate([aus, valence_arousal, probs], axis=1)


def _dyad_emotions(rng: np.random.Generator, a: _Person, b: _Person, styles: tuple[int, int], mix: _Mixing,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Emotions of both persons of one clip: each follows the other's own behaviour with a lag."""
    pad = 20
    own_a = _smooth_noise(rng, FRAMES + pad)
    own_b = _smooth_noise(rng, FRAMES + pad)
    coupling = 0.9

    def latent(me: _Person, own: np.ndarray, partner_own: np.ndarray, style: int, partner_style: int,
               ) -> np.ndarray:
        follow = partner_own[pad - me.lag: pad - me.lag + FRAMES]
        mood = mix.styles[style] + mix.reactions[partner_style]
        return mood + me.bias + me.gain * (own[pad:] * 0.6 + coupling * follow)

    return (_emotions(latent(a, own_a, own_b, *styles), a, mix),
            _emotions(latent(b, own_b, own_a, *styles[::-1]), b, mix))


def _draw_faces(emotions: np.ndarray, size: int) -> np.ndarray:
    """(T, size, size, 3) uint8 frames of a cartoon face driven by the emotion rows."""
    t = len(emotions)
    au = emotions[:, :15]
    valence, arousal = emotions[:, 15], emotions[:, 16]
    happy = emotions[:, 18]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    yy, xx = yy[None], xx[None]

    def col(v: np.ndarray) -> np.ndarray:
        return v.astype(np.float32)[:, None, None]

    skin = 0.55 + 0.25 * col(arousal)
    face = (xx / 0.42) ** 2 + (yy / 0.48) ** 2 < 1
    brow_y = -0.2 - 0.06 * col(au[:, 0] + au[:, 1]) + 0.05 * col(au[:, 2])
    brows = (np.abs(yy - brow_y) < 0.025) & (np.abs(np.abs(xx) - 0.17) < 0.1)
    eye_open = 0.07 - 0.04 * col(au[:, 4]) + 0.02 * col(arousal)
    eyes = ((np.abs(xx) - 0.17) / 0.08) ** 2 + ((yy + 0.08) / np.maximum(eye_open, 0.01)) ** 2 < 1
    smile = 0.5 * col(valence) + 0.6 * col(au[:, 7])
    mouth_open = 0.02 + 0.05 * col(au[:, 13] + au[:, 14])
    mouth_center = 0.22 - smile * 2.0 * xx**2
    mouth = (np.abs(yy - mouth_center) < mouth_open) & (np.abs(xx) < 0.2)
    cheeks = (((np.abs(xx) - 0.22) / 0.07) ** 2 + ((yy - 0.08) / 0.05) ** 2 < 1) & (col(au[:, 3]) > 0)

    frames = np.zeros((t, size, size, 3), dtype=np.float32)
    frames[..., 0] = np.where(face, skin, 0.15)
    frames[..., 1] = np.where(face, skin * 0.8, 0.2)
    frames[..., 2] = np.where(face, skin * 0.65, 0.3 + 0.2 * col(happy))
    frames[..., 0] += np.where(cheeks, 0.25, 0.0)
    for part, shade in ((brows, 0.1), (eyes, 0.05), (mouth, 0.25)):
        frames[part] = shade
    return (np.clip(frames, 0, 1) * 255).astype(np.uint8)


def _write_mp4(path: Path, frames: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        # One thread and no mb-tree: with mb-tree, x264's AVX-512 kernels read heap memory they never wrote,
        # so the bytes of a clip depended on what the process had allocated before (seen on a busy machine;
        # reproduced with MALLOC_PERTURB_, see tests/test_synthetic.py). Without it the file is a function of
        # the frames alone.
        stream.options = {"crf": "18", "preset": "veryfast", "threads": "1", "x264-params": "mbtree=0"}
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def _voice(emotions: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A voiced signal whose pitch follows valence and loudness follows arousal and mouth opening."""
    n = int(round((FRAMES / FPS + 0.02) * rate))
    frame_times = (np.arange(FRAMES) + 0.5) / FPS
    times = np.arange(n) / rate
    valence = np.interp(times, frame_times, emotions[:, 15])
    arousal = np.interp(times, frame_times, emotions[:, 16])
    opening = np.interp(times, frame_times, emotions[:, 13] + emotions[:, 14])
    f0 = 150.0 + 60.0 * valence
    phase = 2 * np.pi * np.cumsum(f0) / rate
    amplitude = 0.03 + 0.12 * (arousal + 1) * (0.3 + 0.35 * opening)
    harmonics = np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.25 * np.sin(3 * phase)
    return (amplitude * harmonics / 1.75 + 0.005 * rng.standard_normal(n)).astype(np.float32)


def _sessions(split_offset: int, count: int) -> list[tuple[str, str, tuple[str, str]]]:
    """(site, session, persons) of `count` NoXI and `count` RECOLA sessions, unique across splits."""
    out = []
    for i in range(split_offset, split_offset + count):
        out.append(("NoXI", f"{i + 1:03d}_2016-03-{(i % 28) + 1:02d}_{CITIES[i % 3]}",
                    ("Expert_video", "Novice_video")))
    for i in range(split_offset, split_offset + count):
        out.append(("RECOLA", f"group-{i + 1}", RECOLA_PAIRS[i % 3]))
    return out


def _write_split(root: Path, split: str, sessions: list[tuple[str, str, tuple[str, str]]],
                 settings: SyntheticSettings, mix: _Mixing, rng: np.random.Generator) -> None:
    rows: list[tuple[str, str]] = []
    first_styles: list[int] = []
    second_styles: list[int] = []
    for site, session, (first, second) in sessions:
        persons = (_person(rng), _person(rng))
        for clip in range(1, settings.clips_per_session + 1):
            styles = tuple(int(s) for s in rng.choice(STYLES, size=2, replace=False))
            keys = (f"{site}/{session}/{first}/{clip}", f"{site}/{session}/{second}/{clip}")
            for key, person_folder, emotions in zip(keys, ("P1", "P2"),
                                                    _dyad_emotions(rng, *persons, styles, mix)):
                _write_clip(root / split, key, person_folder, emotions, settings, mix, rng)
            rows.append(keys)
            first_styles.append(styles[0])
            second_styles.append(styles[1])
    with split_csv(root, split).open("w") as f:
        f.write(",".join(SPLIT_HEADER) + "\n")
        for i, (speaker, listener) in enumerate(rows):
            f.write(f"{i},{speaker},{listener}\n")
    mirrored_styles = np.array(first_styles + second_styles)  # each mirrored sample's speaker style
    neighbours = (mirrored_styles[:, None] == mirrored_styles[None, :]).astype(np.float64)
    np.save(neighbour_matrix_path(root, split), neighbours)


def _write_clip(split_dir: Path, key: str, emotion_person: str, emotions: np.ndarray,
                settings: SyntheticSettings, mix: _Mixing, rng: np.random.Generator) -> None:
    root, split = split_dir.parent, split_dir.name
    emotion_csv = emotion_path(root, split, key)
    if ClipKey.parse(key).emotion_person != emotion_person:
        raise ValueError(f"{key}: the layout names its emotion person {ClipKey.parse(key).emotion_person}, "
                         f"not {emotion_person}")
    emotion_csv.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(emotion_csv, emotions, delimiter=",", fmt="%.6g", header=",".join(EMOTION_COLUMNS),
               comments="")
    video_rows = np.concatenate([emotions, emotions[-1:]])  # the 751st frame repeats the last
    _write_mp4(video_path(root, split, key), _draw_faces(video_rows, settings.frame_size))
    wav = audio_path(root, split, key)
    wav.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(wav, _voice(emotions, settings.audio_rate, rng), settings.audio_rate, subtype="PCM_16")
    # Pre-extracted features as shipped by earlier extractors; some saved one folder too deep.
    for folder, rows in ((FEATURE_FOLDERS["video"], video_rows), (FEATURE_FOLDERS["audio"], emotions)):
        values = np.tanh(rows @ mix.features[folder] + 0.05 * rng.standard_normal((len(rows), 1)))
        target = features_path(root, split, folder, key)
        if rng.random() < 0.5:  # nested: <folder>/<key>/<clip>.pth
            target = target.with_suffix("") / target.name
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.save(torch.from_numpy(values.astype(np.float32)), target)


def write_dataset(out: Path, settings: SyntheticSettings = SyntheticSettings()) -> None:
    """Write the whole dataset to `out` (which must not exist or be empty), atomically by renaming."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: refusing to write a synthetic dataset into a non-empty folder")
    rng = np.random.default_rng(settings.seed)
    mix = _Mixing(
        au=rng.normal(0, 1.0, (15, LATENT)),
        expression=rng.normal(0, 1.5, (8, LATENT)),
        styles=rng.normal(0, 1.0, (STYLES, LATENT)),
        reactions=rng.normal(0, 0.5, (STYLES, LATENT)),
        features={k: rng.normal(0, 0.5, (25, d)) for k, d in PRECOMPUTED_DIMS.items()},
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        offset = 0
        for split in SPLITS:
            count = settings.sessions.get(split, 0)
            if count:
                _write_split(tmp, split, _sessions(offset, count), settings, mix, rng)
                offset += count
        tmp.chmod(0o755)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
