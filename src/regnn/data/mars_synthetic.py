"""A small synthetic dataset in the MARS layout (REACT 2025/2026), for tests and demos of that protocol.

What it reproduces, because the MARS stages must cope with it (notes/react2025.md §1, §3):
- the folder tree `<split>/<modality>/<role>/<session>/<stem>.<ext>` with facial attributes (T, 25) `.npy`,
  face-crop `.mp4` and `.wav` audio, optionally 3DMM coefficients shaped (T, 1, 58) as 2024 shipped them;
- variable clip lengths, and a speaker and listener file of one stem that differ by a few frames;
- sessions holding several recordings (several listeners per session: the session rule's appropriate set);
- the junk the real archives carry: AppleDouble `._*` files, `.DS_Store`, `__MACOSX/` and `PaxHeader/`.

A learnable dependency, so a model can beat the random baseline (as `regnn.data.synthetic` does for REACT):
- each session has a script (its topic, a smooth latent series) that every speaker of the session follows in
  part (`SCRIPT_SHARE`), and a mood; a listener reacts to its own speaker with a lag (3-11 frames) through a
  fixed non-identity map (`REACTION`: valence mirrored, two latent dims swapped), plus the session's mood
  and its own behaviour; so the reaction is learnable but not a copy (mime is not the answer). So the listeners of one session, the session rule's appropriate
  reactions, resemble each other and the true one over time;
- the speaker's media carry the speaker's behaviour: each video frame is four flat quadrants whose colours
  follow valence/arousal/AU12, two triples of expression probabilities and three AU group means; the audio's
  loudness follows arousal and its pitch valence. So random-weight backbones' features can decode it.
Deterministic per seed (the mp4 encoder runs single-threaded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import soundfile

from regnn.data import mars
from regnn.data.noise import ar1_noise
from regnn.io import atomic_directory, x264_options

LATENT = 4
SCRIPT_SHARE = 0.6
"""Variance share of a speaker's latent behaviour that is the session's script."""
MAX_LAG = 12
REACTION = np.array([[-1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]])
"""How a listener's latent behaviour answers its speaker's (latent dim 0 drives valence, 1 arousal)."""


@dataclass(frozen=True)
class MarsSyntheticSettings:
    """Size and seed of a synthetic MARS dataset."""

    seed: int = 0
    sessions: dict[str, int] = field(default_factory=lambda: {"train": 2, "val": 1, "test": 2})
    stems_per_session: tuple[int, int] = (2, 4)  # inclusive range of recordings per session
    frames: tuple[int, int] = (58, 160)  # inclusive range of clip lengths
    length_jitter: int = 2  # a stem's listener file is up to this many frames longer or shorter
    frame_size: int = 16
    audio_rate: int = 8000
    coefficients: bool = True
    junk: bool = True


def _smooth(rng: np.random.Generator, length: int) -> np.ndarray:
    return ar1_noise(rng, length, LATENT, rho=0.95)


def _attributes(latent: np.ndarray, mix: np.ndarray) -> np.ndarray:
    """(T, 25) float32: binary AUs, valence/arousal in [-1, 1], expression probabilities summing to 1."""
    z = latent @ mix  # (T, 23)
    aus = (z[:, :15] > 0.3).astype(np.float64)
    va = np.tanh(latent[:, :2])
    logits = z[:, 15:]
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return np.concatenate([aus, va, probs], axis=1).astype(np.float32)


def _quadrant_colours(row: np.ndarray) -> np.ndarray:
    """(4, 3) RGB in [0, 1] of one frame's quadrants: what the face-crop stand-in shows of the attributes."""
    aus, expressions = row[:15], row[17:25]
    return np.clip(np.array([
        [0.5 + 0.4 * row[15], 0.5 + 0.4 * row[16], 0.2 + 0.6 * row[11]],  # valence, arousal, AU12
        0.1 + 2.4 * expressions[:3],
        0.1 + 2.4 * expressions[3:6],
        0.1 + 0.8 * aus.reshape(3, 5).mean(axis=1),
    ]), 0.0, 1.0)


def _write_mp4(path: Path, attributes: np.ndarray, size: int) -> None:
    """A face-crop stand-in: four flat quadrants whose colours follow the attributes (`_quadrant_colours`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    half = size // 2
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=int(mars.FPS))
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = x264_options(crf=30, preset="ultrafast")
        image = np.empty((size, size, 3), dtype=np.uint8)
        for row in attributes:
            colours = (_quadrant_colours(row) * 255).astype(np.uint8)
            image[:half, :half], image[:half, half:] = colours[0], colours[1]
            image[half:, :half], image[half:, half:] = colours[2], colours[3]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def _write_wav(path: Path, attributes: np.ndarray, rate: int, rng: np.random.Generator) -> None:
    """A voice stand-in: loudness follows arousal, pitch valence (phase-continuous)."""
    n = int(round(len(attributes) / mars.FPS * rate))
    t = np.arange(n) / rate
    frame_times = (np.arange(len(attributes)) + 0.5) / mars.FPS
    loud = np.interp(t, frame_times, attributes[:, 16])
    pitch = 180.0 + 60.0 * np.interp(t, frame_times, attributes[:, 15])
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    signal = (0.05 + 0.04 * loud) * np.sin(phase) + 0.003 * rng.standard_normal(n)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, signal.astype(np.float32), rate, subtype="PCM_16")


def _write_clip(split_dir: Path, role: str, session: str, stem: str, attributes: np.ndarray,
                settings: MarsSyntheticSettings, rng: np.random.Generator) -> None:
    rel = Path(role) / session
    npy = split_dir / mars.ATTRIBUTES / rel / f"{stem}.npy"
    npy.parent.mkdir(parents=True, exist_ok=True)
    np.save(npy, attributes)
    _write_mp4(split_dir / mars.VIDEO / rel / f"{stem}.mp4", attributes, settings.frame_size)
    _write_wav(split_dir / mars.AUDIO / rel / f"{stem}.wav", attributes, settings.audio_rate, rng)
    if settings.coefficients:
        coefficients = split_dir / mars.COEFFICIENTS / rel / f"{stem}.npy"
        coefficients.parent.mkdir(parents=True, exist_ok=True)
        np.save(coefficients, rng.normal(0, 0.1, (len(attributes), 1, mars.COEFFICIENT_DIMS)).astype(np.float32))


def _write_junk(split_dir: Path, rng: np.random.Generator) -> None:
    """What macOS and tar leave in the archives; the index must ignore all of it."""
    for npy in sorted(split_dir.glob(f"{mars.ATTRIBUTES}/*/*/*.npy"))[:: 3]:
        (npy.parent / f"._{npy.name}").write_bytes(b"\0\x05\x16\x07" + rng.bytes(28))  # AppleDouble header
    for folder in (split_dir, split_dir / mars.VIDEO, next(split_dir.glob(f"{mars.ATTRIBUTES}/*/*"))):
        (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + rng.bytes(16))
    macosx = split_dir / "__MACOSX" / mars.ATTRIBUTES / "speaker"
    macosx.mkdir(parents=True)
    (macosx / "._session0").write_bytes(rng.bytes(32))
    pax = split_dir / mars.AUDIO / "listener" / "PaxHeader"
    pax.mkdir(parents=True)
    (pax / "stem.wav").write_text("30 mtime=1718960000.0\n")


def write_mars_dataset(out: Path, settings: MarsSyntheticSettings = MarsSyntheticSettings()) -> None:
    """Write the dataset to `out` (missing or empty), atomically by renaming a finished temp folder."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: refusing to write a synthetic dataset into a non-empty folder")
    rng = np.random.default_rng(settings.seed)
    mix = rng.normal(0, 1.0, (LATENT, 23))
    with atomic_directory(out) as tmp:
        session_number = 0
        for split in mars.SPLITS:
            split_dir = tmp / split
            for _ in range(settings.sessions.get(split, 0)):
                session = f"session{session_number}"
                session_number += 1
                mood = rng.normal(0, 0.8, LATENT)
                # the session's script from its own stream, so the main stream (stems, lengths) is unchanged
                script = _smooth(np.random.default_rng([settings.seed, session_number]),
                                 settings.frames[1] + MAX_LAG)
                for i in range(int(rng.integers(settings.stems_per_session[0], settings.stems_per_session[1] + 1))):
                    stem = f"Camera-2024-06-{int(rng.integers(1, 29)):02d}-{int(rng.integers(0, 10**5)):05d}{i}"
                    length = int(rng.integers(settings.frames[0], settings.frames[1] + 1))
                    lag = int(rng.integers(3, MAX_LAG))
                    speaker = (np.sqrt(SCRIPT_SHARE) * script[:length + lag]
                               + np.sqrt(1 - SCRIPT_SHARE) * _smooth(rng, length + lag))
                    listener_length = max(1, length + int(rng.integers(-settings.length_jitter,
                                                                       settings.length_jitter + 1)))
                    follow = np.resize(speaker[: length] @ REACTION, (listener_length, LATENT))
                    listener = mood + 0.7 * follow + 0.5 * _smooth(rng, listener_length)
                    _write_clip(split_dir, "speaker", session, stem, _attributes(speaker[lag:], mix), settings, rng)
                    _write_clip(split_dir, "listener", session, stem, _attributes(listener, mix), settings, rng)
            if settings.junk and split_dir.is_dir():
                _write_junk(split_dir, rng)
