"""Training input pipeline: its share of step time and windows/s, next to a reference-style loader.

The reference REGNN trainer loads two feature files per window and re-reads one emotion CSV per sampled
neighbour per window with pandas, every batch. Ours gathers windows from arrays loaded once
(`regnn.data.windows.WindowSampler`). Ours is measured as training uses it (assembled one
batch ahead in a background thread), so its input time is what a step actually waits. Both feed the same
paper-size REGNN step (forward, backward, Adam), in one run on the same data, so the shares are comparable.

    python benchmarks/train_input.py [--rows 48] [--steps 3] [--batch-size 128] [--device auto]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch

from regnn.data.layout import EMOTION_COLUMNS, EMOTION_DIMS, FRAMES
from regnn.data.windows import Batch, WindowSampler, load_split, prefetched_batches
from regnn.feature_store import write_shard
from regnn.model.regnn import REGNN
from regnn.settings import PAPER_TRAIN
from regnn.devices import choose_device
from regnn.training import training_step

VIDEO_DIM, AUDIO_DIM, WINDOW, STRIDE, NEIGHBOURS = 768, 128, 50, 25, 10


def write_dataset(root: Path, rows: int, seed: int = 0) -> dict:
    """Per-clip emotion CSVs and feature .pth files (the reference's inputs) plus our cache and shards."""
    rng = np.random.default_rng(seed)
    size = 2 * rows
    clips = [f"NoXI/{i:03d}_bench/{p}/1" for p in ("Expert_video", "Novice_video") for i in range(rows)]
    emotions = rng.uniform(0, 1, (size, FRAMES, EMOTION_DIMS)).astype(np.float32)
    video = rng.standard_normal((size, FRAMES, VIDEO_DIM)).astype(np.float32)
    audio = rng.standard_normal((size, FRAMES, AUDIO_DIM)).astype(np.float32)
    neighbours = (rng.uniform(size=(size, size)) < 0.3).astype(np.uint8)  # ~0.3 * 2N appropriate listeners
    np.fill_diagonal(neighbours, 1)
    for k, clip in enumerate(clips):
        csv = root / "Emotion" / f"{clip}.csv"
        csv.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(emotions[k], columns=EMOTION_COLUMNS).to_csv(csv, index=False)
        for name, feats in (("Video_features", video), ("Audio_features", audio)):
            pth = root / name / f"{clip}.pth"
            pth.parent.mkdir(parents=True, exist_ok=True)
            torch.save(torch.from_numpy(feats[k]), pth)
    with h5py.File(root / "emotions.h5", "w") as f:
        f.create_dataset("clips", data=np.array(clips, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("emotions", data=emotions)
        f.create_dataset("listener_index", data=(np.arange(size) + rows) % size)
        f.create_dataset("neighbours", data=neighbours)
    write_shard(root / "video.h5", dict(zip(clips, video)), "bench", {})
    write_shard(root / "audio.h5", dict(zip(clips, audio)), "bench", {})
    listeners = [clips[(k + rows) % size] for k in range(size)]
    return {"clips": clips, "listeners": listeners, "neighbours": neighbours}


class ReferenceStyleLoader:
    """What the reference does per batch: torch.load two feature files per window, and for every sampled
    neighbour look the speaker up by list search and read the listener's emotion CSV with pandas."""

    def __init__(self, root: Path, meta: dict, n_windows_per_clip: int):
        self.root, self.meta, self.per_clip = root, meta, n_windows_per_clip

    def batch(self, window_ids: np.ndarray) -> Batch:
        videos, audios, targets, counts = [], [], [], []
        for w in window_ids:
            k, which = divmod(int(w), self.per_clip)
            start = which * STRIDE
            clip = self.meta["clips"][k]
            videos.append(torch.load(self.root / "Video_features" / f"{clip}.pth")[start:start + WINDOW])
            audios.append(torch.load(self.root / "Audio_features" / f"{clip}.pth")[start:start + WINDOW])
            row = self.meta["neighbours"][self.meta["clips"].index(clip)]
            chosen = [self.meta["listeners"][j] for j in np.where(row == 1)[0]]
            chosen = random.sample(chosen, NEIGHBOURS) if len(chosen) > NEIGHBOURS else chosen
            for listener in chosen:
                frame = pd.read_csv(self.root / "Emotion" / f"{listener}.csv", header=None).drop(0)
                values = torch.from_numpy(np.array(frame).astype(np.float32))
                targets.append(values[start:start + WINDOW])
            counts.append(len(chosen))
        return Batch(torch.stack(videos), torch.stack(audios), torch.stack(targets), torch.tensor(counts))


def measure(name: str, batches: Iterator[Batch], model: REGNN, optimizer: torch.optim.Optimizer, steps: int,
            batch_size: int, device: torch.device) -> dict:
    """Run `steps` training steps; input time is how long each step waits for its batch (on the device)."""
    settings = dict(PAPER_TRAIN)
    input_s = compute_s = 0.0
    for _ in range(steps):
        t0 = time.perf_counter()
        batch = next(batches).to(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        loss = training_step(model, batch, settings, None)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        input_s += t1 - t0
        compute_s += time.perf_counter() - t1
    windows = steps * batch_size
    return {"loader": name, "input_s_per_batch": input_s / steps, "step_s_per_batch": compute_s / steps,
            "input_share": input_s / (input_s + compute_s), "input_windows_per_s": windows / input_s,
            "train_windows_per_s": windows / (input_s + compute_s)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=48, help="split rows (2x clips)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = choose_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        meta = write_dataset(root, args.rows)
        t0 = time.perf_counter()
        data = load_split(root / "emotions.h5", [root / "video.h5"], [root / "audio.h5"])
        load_s = time.perf_counter() - t0
        sampler = WindowSampler(data, WINDOW, STRIDE, NEIGHBOURS)
        reference = ReferenceStyleLoader(root, meta, len(sampler.starts))
        order = np.random.default_rng(0).permutation(sampler.n_windows)
        torch.manual_seed(0)
        random.seed(0)
        model = REGNN(VIDEO_DIM, AUDIO_DIM).to(device).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=5e-4)
        rng = np.random.default_rng(1)
        n = args.steps + 1
        ours = prefetched_batches(sampler, order, args.batch_size, n, rng)
        measure("warm-up", ours, model, optimizer, 1, args.batch_size, device)
        theirs = (reference.batch(order[b * args.batch_size:(b + 1) * args.batch_size]) for b in range(n))
        results = [
            measure("in-memory, prefetched (ours)", ours, model, optimizer, args.steps, args.batch_size, device),
            measure("reference-style", theirs, model, optimizer, args.steps, args.batch_size, device),
        ]
    print(f"device {device}, torch threads {torch.get_num_threads()}, {2 * args.rows} clips, batch "
          f"{args.batch_size} windows x <= {NEIGHBOURS} neighbours, {args.steps} steps each; "
          f"one-off load of the cache and shards {load_s:.2f} s")
    print(pd.DataFrame(results).to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
