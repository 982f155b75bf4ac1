"""A learnable toy split for the model/training/generation tests, written straight to the stage formats.

Each dyad shares a smooth latent signal; the second person's emotions are the first's lagged by a few
frames plus noise, so a speaker's features (a fixed random map of the speaker's emotions) predict its
listener. Neighbour rows: self plus the position of the other dyad of the same "style".
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from regnn.data.layout import EMOTION_DIMS, FRAMES
from regnn.feature_store import write_shard

VIDEO_DIM, AUDIO_DIM = 12, 6


def toy_split(root: Path, dyads: int = 6, seed: int = 0, lag: int = 5) -> dict:
    """Write emotions.h5 and video/audio shards under `root`; return their paths and the arrays."""
    rng = np.random.default_rng(seed)
    t = np.arange(FRAMES + lag)
    first, second = [], []
    for _ in range(dyads):
        freqs = rng.uniform(0.01, 0.08, size=(1, EMOTION_DIMS))
        phases = rng.uniform(0, 2 * np.pi, size=(1, EMOTION_DIMS))
        base = 0.5 + 0.35 * np.sin(t[:, None] * freqs + phases)
        first.append(base[lag:] + 0.02 * rng.standard_normal((FRAMES, EMOTION_DIMS)))
        second.append(base[:-lag] + 0.02 * rng.standard_normal((FRAMES, EMOTION_DIMS)))
    emotions = np.concatenate([first, second]).astype(np.float32)  # mirrored: col1 clips, then col2 clips
    size = 2 * dyads
    clips = [f"NoXI/{i:03d}_toy/Expert_video/1" for i in range(dyads)]
    clips += [f"NoXI/{i:03d}_toy/Novice_video/1" for i in range(dyads)]
    listener_index = (np.arange(size) + dyads) % size
    neighbours = np.eye(size, dtype=np.uint8)
    for k in range(size):
        neighbours[k, (k + 2) % size] = 1
    root.mkdir(parents=True, exist_ok=True)
    emotions_h5 = root / "emotions.h5"
    with h5py.File(emotions_h5, "w") as f:
        f.create_dataset("clips", data=np.array(clips, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("emotions", data=emotions)
        f.create_dataset("listener_index", data=listener_index.astype(np.int64))
        f.create_dataset("neighbours", data=neighbours)
    w_video = rng.standard_normal((EMOTION_DIMS, VIDEO_DIM)).astype(np.float32)
    w_audio = rng.standard_normal((EMOTION_DIMS, AUDIO_DIM)).astype(np.float32)
    video = {c: e @ w_video + 0.05 * rng.standard_normal((FRAMES, VIDEO_DIM)) for c, e in zip(clips, emotions)}
    audio = {c: np.tanh(e @ w_audio) for c, e in zip(clips, emotions)}
    video_shards = [root / "video" / f"shard-{k}.h5" for k in range(2)]
    for k, part in enumerate(np.array_split(np.arange(size), 2)):
        write_shard(video_shards[k], {clips[i]: video[clips[i]] for i in part}, "toy_video", {"k": k})
    audio_shards = [root / "audio" / "shard-0.h5"]
    write_shard(audio_shards[0], audio, "toy_audio", {})
    return {"emotions": emotions_h5, "video": video_shards, "audio": audio_shards, "clips": clips,
            "arrays": emotions, "listener_index": listener_index, "neighbours": neighbours}


TINY_MODEL = {
    "perceptual": {"dim": 16, "heads": 2, "layers": 1, "output_dim": 16, "embed_dropout": 0.0},
    "cognitive": {"edge_channels": 2},
    "gnn": {"width": 16},
}


def tiny_train(**overrides) -> dict:
    settings = {"epochs": 4, "batches_per_epoch": 3, "batch_size": 16, "checkpoint_every": 2, "checkpoint_offset": 0,
                "lr": 5e-3, "milestones": [100], "device": "cpu"}
    settings.update(overrides)
    return settings


def mars_toy_split(root: Path, lengths: tuple[int, ...] = (130, 61, 97, 250, 40, 75), seed: int = 0,
                   sessions: tuple[int, ...] = (0, 0, 0, 1, 1, 2)) -> dict:
    """A MARS (react2025) split written straight to the stage formats: emotions.h5 via `mars.write_index`,
    feature shards via `write_shard`. Stem i is in session `sessions[i]` with a speaker clip of `lengths[i]`
    frames and a listener 3 frames longer (lagged copy plus noise). Video features hold (frame index, stem,
    speaker emotions) so tests can read which frames a window took."""
    from regnn.data import mars

    rng = np.random.default_rng(seed)
    clips, attributes, files = [], [], {}
    for i, (n, s) in enumerate(zip(lengths, sessions)):
        speaker = rng.uniform(0, 1, (n + 3, EMOTION_DIMS)).astype(np.float32)
        for role, series in (("speaker", speaker[3:]), ("listener", speaker[:n + 3] * 0.9 + 0.05)):
            key = f"{role}/session{s}/stem{i}"
            clips.append(key)
            attributes.append(series.astype(np.float32))
            files[key] = {mars.ATTRIBUTES: root / f"{key}.npy"}
    order = sorted(range(len(clips)), key=lambda j: mars._sample_order(clips[j]))
    clips, attributes = [clips[j] for j in order], [attributes[j] for j in order]
    samples = [(c, mars.partner_key(c)) for c in clips]  # direction both
    candidates: dict = {}
    for c in clips:
        role, session, _ = c.split("/")
        candidates.setdefault((role, session), []).append(c)
    index = mars.MarsIndex(clips, attributes, files, samples, mars.draw_targets(samples, candidates), [], [])
    root.mkdir(parents=True, exist_ok=True)
    out = {name: root / f"{name}.{ext}" for name, ext in (("index", "tsv"), ("emotions", "h5"), ("targets", "tsv"))}
    mars.write_index(index, out["index"], out["emotions"], out["targets"])
    series = dict(zip(clips, attributes))
    w_video = rng.standard_normal((EMOTION_DIMS, VIDEO_DIM - 2)).astype(np.float32)
    video = {c: np.concatenate([np.arange(len(e))[:, None], np.full((len(e), 1), k), e @ w_video], axis=1)
             for k, (c, e) in enumerate(series.items())}
    audio = {c: np.tanh(e[:, :AUDIO_DIM]) for c, e in series.items()}
    out["video"] = [root / "video" / f"shard-{k}.h5" for k in range(2)]
    for k, part in enumerate(np.array_split(np.arange(len(clips)), 2)):
        write_shard(out["video"][k], {clips[i]: video[clips[i]] for i in part}, "toy_video", {})
    out["audio"] = [root / "audio" / "shard-0.h5"]
    write_shard(out["audio"][0], audio, "toy_audio", {})
    return {**out, "clips": clips, "series": series, "video_features": video}
