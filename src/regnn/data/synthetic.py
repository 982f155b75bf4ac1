"""A synthetic dataset in the exact REACT 2024 layout, with a dependency a model can learn.

Each person of a dyad reacts to the other, as a listener does: their behaviour is their own drive plus a
fixed reaction (REACTION) to what the partner did a person-specific 4-16 frames earlier. The reaction
mirrors valence (emotional contagion) but not the face as a whole: the listener smiles at the partner's good
mood, raises the brows when the partner is animated and is roused by the partner's surprise. So a listener's
reaction is a learnable function of the speaker's behaviour that is not a copy of it. Real REACT listeners
do not mime either: there the mime baseline reaches 4 % of the ground truth's FRC (0.37 vs 8.35 on the REACT
2024 validation set); an earlier generator, whose listener was the speaker shifted in time, gave it 18 %, as
much as a linear map of the speaker's past frames reached. Both persons react (each is the speaker in one
mirrored half), so the two reactions feed back into each other. A mood set by each person's style and by how
they react to the partner's style shifts their emotions. Emotions (AUs, valence/arousal, expression
probabilities) are read off the latent behaviour.

Appropriateness means what it means in REACT, whose matrix marks listeners whose reactions to similar
speaker behaviour are similar: the dyads of a split are grouped into scenes, a scene has one script per
role that mostly drives the person in that role, and listener j is appropriate for speaker k when both
dyads play the same scene in the same role. Their speakers then behave alike and they react alike (closer
in DTW than other listeners), so the paper's best-of-10-neighbours loss has a consistent target.

The video draws the project's face (`regnn.face`: the AUs move its parts), lit brighter with arousal; the
audio's pitch follows valence, its loudness and first formant arousal (and mouth opening), its second
formant the smile. So even the demo's tiny random-weight backbones carry the speaker's behaviour into their
features (benchmarks/demo_probe.py measures how much).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import soundfile
import torch

from regnn.data.layout import (EMOTION_COLUMNS, FEATURE_FOLDERS, FPS, FRAMES, SPLIT_HEADER, SPLITS, ClipKey,
                               audio_path, emotion_path, features_path, neighbour_matrix_path, split_csv,
                               video_path)
from regnn.data.noise import ar1_noise
from regnn.face import render_faces
from regnn.io import atomic_directory, x264_options

LATENT = 4  # valence, arousal, smile, brow
STYLES = 4
PAD = 100  # frames of behaviour before a clip starts, in which the mutual reaction settles
SCENE_DYADS = 4  # dyads that play one scene: each speaker has ~4 appropriate listeners (REACT: ~7)
SCRIPT_SHARE = 0.8  # fraction of a person's own drive that is the script of their role in the scene
COUPLING = 1.2  # strength of the reaction; the mutual feedback (a gain of 0.72 per step) stays stable
# How a person reacts to the partner's latent (valence, arousal, smile, brow), rows = the reacting person.
REACTION = np.array([[0.6, 0.0, 0.0, 0.0],   # valence: emotional contagion
                     [0.0, 0.0, 0.0, 0.6],   # arousal: roused by the partner's raised brows (surprise)
                     [0.6, 0.0, 0.0, 0.0],   # smile: at the partner's good mood
                     [0.0, 0.6, 0.0, 0.0]])  # brow: interest when the partner is animated
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


def _smooth_noise(rng: np.random.Generator, length: int) -> np.ndarray:
    return ar1_noise(rng, length, LATENT, rho=0.96)


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


def _dyad_emotions(rng: np.random.Generator, a: _Person, b: _Person, styles: tuple[int, int],
                   scripts: np.ndarray, mix: _Mixing) -> tuple[np.ndarray, np.ndarray]:
    """Emotions of both persons of one clip, each reacting to the other with their own lag.

    A person's behaviour is their own drive plus COUPLING x REACTION applied to what the partner did `lag`
    frames earlier (both react, as both are speaker in one mirrored half). The drive is mostly the script
    of the person's role in the scene (SCRIPT_SHARE of its variance) plus their own part.
    """
    steps = FRAMES + PAD
    drive = np.stack([np.sqrt(SCRIPT_SHARE) * scripts[role] + np.sqrt(1 - SCRIPT_SHARE) * _smooth_noise(rng, steps)
                      for role in (0, 1)])
    react = COUPLING * REACTION
    x = drive.copy()
    lags = (a.lag, b.lag)
    for t in range(steps):
        for me in (0, 1):
            if t >= lags[me]:
                x[me, t] += react @ x[1 - me, t - lags[me]]

    def emotions(me: int, person: _Person, style: int, partner_style: int) -> np.ndarray:
        mood = mix.styles[style] + mix.reactions[partner_style]
        return _emotions(mood + person.bias + person.gain * x[me, PAD:], person, mix)

    return emotions(0, a, *styles), emotions(1, b, *styles[::-1])


def _draw_faces(emotions: np.ndarray, size: int) -> np.ndarray:
    """(T, size, size, 3) uint8: the project's face (AUs move its parts), lit brighter with arousal."""
    faces = render_faces(emotions, size, panels=False).astype(np.float32)
    light = 0.8 + 0.2 * emotions[:, 16].astype(np.float32)
    return np.clip(faces * light[:, None, None, None] + 0.5, 0, 255).astype(np.uint8)


def _write_mp4(path: Path, frames: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = x264_options(crf=18, preset="veryfast")
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def _voice(emotions: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A voiced signal: pitch follows valence, loudness and the first formant arousal (vocal effort), the
    second formant the smile (AU12), and loudness the mouth opening (AU25, AU26)."""
    n = int(round((FRAMES / FPS + 0.02) * rate))
    frame_times = (np.arange(FRAMES) + 0.5) / FPS
    times = np.arange(n) / rate

    def track(column: int) -> np.ndarray:
        return np.interp(times, frame_times, emotions[:, column])

    valence, arousal, smile = track(15), track(16), track(7)
    opening = track(13) + track(14)
    f0 = 150.0 + 60.0 * valence
    phase = 2 * np.pi * np.cumsum(f0) / rate
    formants = ((600.0 + 300.0 * arousal, 150.0), (1700.0 + 500.0 * smile, 250.0))  # (centre Hz, width Hz)
    voice = np.zeros(n)
    for k in range(1, 9):  # harmonics below the Nyquist frequency of an 8 kHz demo rate
        gain = 0.15 + sum(np.exp(-0.5 * ((k * f0 - centre) / width) ** 2) for centre, width in formants)
        voice += gain * np.sin(k * phase) * (k * f0 < rate / 2)
    amplitude = 0.05 * np.exp(0.9 * arousal) * (1 + 0.5 * opening)  # log loudness linear in arousal
    return (amplitude * voice / 2.5 + 0.005 * rng.standard_normal(n)).astype(np.float32)


def _sessions(split_offset: int, count: int) -> list[tuple[str, str, tuple[str, str]]]:
    """(site, session, persons) of `count` NoXI and `count` RECOLA sessions, unique across splits."""
    out = []
    for i in range(split_offset, split_offset + count):
        out.append(("NoXI", f"{i + 1:03d}_2016-03-{(i % 28) + 1:02d}_{CITIES[i % 3]}",
                    ("Expert_video", "Novice_video")))
    for i in range(split_offset, split_offset + count):
        out.append(("RECOLA", f"group-{i + 1}", RECOLA_PAIRS[i % 3]))
    return out


def _scene_of_dyads(rng: np.random.Generator, dyads: int) -> np.ndarray:
    """Scene of each dyad: about SCENE_DYADS dyads per scene (at least two scenes), mixed across sessions."""
    scenes = max(2, round(dyads / SCENE_DYADS))
    return rng.permutation(dyads) % scenes


def _write_split(root: Path, split: str, sessions: list[tuple[str, str, tuple[str, str]]],
                 settings: SyntheticSettings, mix: _Mixing, rng: np.random.Generator) -> None:
    dyads = len(sessions) * settings.clips_per_session
    scene_of = _scene_of_dyads(rng, dyads)
    scenes = [(np.stack([_smooth_noise(rng, FRAMES + PAD) for _ in range(2)]),
               tuple(int(s) for s in rng.choice(STYLES, size=2, replace=False)))
              for _ in range(scene_of.max() + 1)]  # (the two roles' scripts, the two roles' styles)
    rows: list[tuple[str, str]] = []
    for site, session, (first, second) in sessions:
        persons = (_person(rng), _person(rng))
        for clip in range(1, settings.clips_per_session + 1):
            scripts, styles = scenes[scene_of[len(rows)]]
            keys = (f"{site}/{session}/{first}/{clip}", f"{site}/{session}/{second}/{clip}")
            for key, person_folder, emotions in zip(keys, ("P1", "P2"),
                                                    _dyad_emotions(rng, *persons, styles, scripts, mix)):
                _write_clip(root / split, key, person_folder, emotions, settings, mix, rng)
            rows.append(keys)
    with split_csv(root, split).open("w") as f:
        f.write(",".join(SPLIT_HEADER) + "\n")
        for i, (speaker, listener) in enumerate(rows):
            f.write(f"{i},{speaker},{listener}\n")
    # Mirrored position k < N has speaker = first person of dyad k, k + N the second. Listener j is
    # appropriate for speaker k when both dyads play the same scene and k, j speak in the same role.
    role_scene = np.concatenate([scene_of, scene_of + scene_of.max() + 1])
    neighbours = (role_scene[:, None] == role_scene[None, :]).astype(np.float64)
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
    with atomic_directory(out) as tmp:
        offset = 0
        for split in SPLITS:
            count = settings.sessions.get(split, 0)
            if count:
                _write_split(tmp, split, _sessions(offset, count), settings, mix, rng)
                offset += count
