"""Generation: 10 appropriate-reaction samples per speaker clip from a trained REGNN checkpoint.

Per speaker window the cognitive processor gives mu and the edges; a sample is mu + noise decoded by the
reversible GNN's inverse. As in the reference, the noise of one clip-sample (all its windows together) is
rescaled so its largest magnitude is at most sqrt(noise_clip). The 29 overlapping windows are averaged back
into 750 frames; with `modify` (the reference's --modify, off by default) the AU columns are binarised
per window first.

MARS (REACT 2025/2026, `generate_chunks`) follows the 2025/2026 baseline instead: each clip whole, in disjoint
window-frame chunks (the last zero-padded), concatenated and truncated to the clip's length, no averaging.
There the noise is rescaled per `model.inverse` call of `eval_clip_batch_size` chunks (the official
`--eval-clip-batch-size`, a setting: it changes the numbers, see `micro_batch_noise`).
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from tqdm import tqdm

from regnn.data.layout import EMOTION_DIMS
from regnn.data.mars_windows import clip_chunks, load_mars_split
from regnn.data.windows import clip_windows, load_split
from regnn.devices import choose_device
from regnn.io import atomic_output, decode_strings
from regnn.model.regnn import REGNN
from regnn.checkpoints import load_checkpoint, select_checkpoint
from regnn.paths import RESULTS, Results
from regnn.settings import experiment_files, resolve_generate_settings

log = logging.getLogger(__name__)


def overlap_average(windows: torch.Tensor, stride: int) -> torch.Tensor:
    """(..., n_windows, window, D) -> (..., frames, D), averaging frames covered by several windows.

    With window 50 and stride 25 this is the reference's combine_preds: the first 25 frames of window 0,
    then the mean of each overlapping half, then the last 25 frames of the last window.
    """
    *lead, n, window, dims = windows.shape
    frames = (n - 1) * stride + window
    idx = (torch.arange(n, device=windows.device)[:, None] * stride
           + torch.arange(window, device=windows.device)[None, :]).reshape(-1)
    flat = windows.reshape(-1, n * window, dims)
    total = torch.zeros(flat.shape[0], frames, dims, device=windows.device, dtype=windows.dtype)
    total.index_add_(1, idx, flat)
    counts = torch.zeros(frames, device=windows.device, dtype=windows.dtype)
    counts.index_add_(0, idx, torch.ones_like(idx, dtype=windows.dtype))
    return (total / counts[None, :, None]).reshape(*lead, frames, dims)


def clip_noise(noise: torch.Tensor, limit: float | None) -> torch.Tensor:
    """Rescale each clip-sample's noise (dims after the first) so max |noise| <= sqrt(limit)."""
    if limit is None:
        return noise
    bound = math.sqrt(limit)
    peak = noise.abs().flatten(1).amax(dim=1).view(-1, *([1] * (noise.dim() - 1)))
    return noise * torch.clamp(bound / peak, max=1.0)


def modify_aus(reactions: torch.Tensor) -> torch.Tensor:
    """The reference's `--modify`: the 15 AU columns become 1 where the value is >= 1, else 0.

    The reference applies it per window, before the windows are averaged, so frames two windows share can
    come out 0.5. (Its code indexes `[:, :15, :]` of a (windows, frames, 25) tensor, i.e. the first 15 frames
    of every window, not the AU columns its description and the later challenge baselines mean; this follows
    the description.)
    """
    out = reactions.clone()
    out[..., :15] = (out[..., :15] >= 1.0).to(out.dtype)
    return out


def generate(checkpoint: Path, emotions: Path, video_shards: Sequence[Path], audio_shards: Sequence[Path],
             settings: dict[str, Any] | None, seed: int, output: Path, threads: int | None = None) -> None:
    """Write `predictions` (2N, samples, frames, 25) float32 and `clips` (2N,) for a split to `output`."""
    s, device, state = _start(checkpoint, settings, threads)
    data = load_split(Path(emotions), video_shards, audio_shards)
    model = _load_model(checkpoint, state, {"video": data.video_dim, "audio": data.audio_dim}, device)
    model_s = state["settings"]["model"]
    window, stride = model_s["window"], model_s["stride"]
    frames = data.emotions.emotions.shape[1]
    video = clip_windows(data.video, window, stride)
    audio = clip_windows(data.audio, window, stride)
    positions, samples, chunk = len(data.clips), s["samples"], s["batch_clips"]
    with atomic_output(output) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("clips", data=np.array(data.clips, dtype=object), dtype=h5py.string_dtype())
        out = f.create_dataset("predictions", (positions, samples, frames, EMOTION_DIMS), dtype="float32",
                               chunks=(1, samples, frames, EMOTION_DIMS))
        f.attrs.update(checkpoint_epoch=state["epoch"], samples=samples, seed=seed, modify=s["modify"],
                       noise_clip=-1.0 if s["noise_clip"] is None else s["noise_clip"])
        progress = tqdm(total=positions, desc="generate", unit="clip", dynamic_ncols=True)
        for lo in range(0, positions, chunk):
            rows = data.position_clip[lo:lo + chunk]
            out[lo:lo + len(rows)] = _sample_clips(model, video[rows], audio[rows], range(lo, lo + len(rows)),
                                                   samples, s["noise_clip"], seed, stride, device,
                                                   s["modify"])
            progress.update(len(rows))
        progress.close()
    log.info("wrote %d x %d samples to %s", positions, samples, output)


def _start(checkpoint: Path, settings: dict[str, Any] | None, threads: int | None
           ) -> tuple[dict[str, Any], torch.device, dict[str, Any]]:
    """What both generators begin with: the resolved settings, the device and the checkpoint's state."""
    s = resolve_generate_settings(settings)
    if threads:
        torch.set_num_threads(threads)
    return s, choose_device(s["device"]), load_checkpoint(Path(checkpoint))


def _load_model(checkpoint: Path, state: dict[str, Any], dims: dict[str, int], device: torch.device) -> REGNN:
    """The checkpoint's model in eval mode, after checking it was trained on features of these dims."""
    if dims != state["dims"]:
        raise ValueError(f"{checkpoint} was trained on feature dims {state['dims']}, but the shards of this "
                         f"split have {dims}")
    model = REGNN(dims["video"], dims["audio"], state["settings"]["model"])
    model.load_state_dict(state["model"])
    return model.to(device).eval()


@torch.no_grad()
def _sample_clips(model: REGNN, video: np.ndarray, audio: np.ndarray, positions: range, samples: int,
                  noise_limit: float | None, seed: int, stride: int, device: torch.device,
                  modify: bool = False) -> np.ndarray:
    """(c, samples, frames, 25) for c clips given as (c, n_windows, window, D) feature windows."""
    c, n, window = video.shape[:3]
    mu, edge = model.perceive(torch.from_numpy(np.ascontiguousarray(video.reshape(c * n, window, -1))).to(device),
                              torch.from_numpy(np.ascontiguousarray(audio.reshape(c * n, window, -1))).to(device))
    # Noise drawn on the CPU per position from its own generator: the same on any device and batch size.
    noise = torch.stack([
        torch.randn((samples, n, *mu.shape[1:]), generator=torch.Generator().manual_seed(seed * 1_000_003 + k))
        for k in positions])  # (c, samples, n, 25, window)
    noise = clip_noise(noise.reshape(c * samples, n, *mu.shape[1:]), noise_limit)
    noise = noise.reshape(c, samples, n, *mu.shape[1:]).to(device)
    latent = mu.reshape(c, 1, n, *mu.shape[1:]) + noise
    edges = edge.reshape(c, 1, n, *edge.shape[1:]).expand(c, samples, n, *edge.shape[1:])
    reactions = model.decode(latent.reshape(-1, *mu.shape[1:]), edges.reshape(-1, *edge.shape[1:]))
    reactions = reactions.reshape(c, samples, n, window, -1)
    if modify:
        reactions = modify_aus(reactions)
    return overlap_average(reactions, stride).cpu().numpy()


def micro_batch_noise(noise: torch.Tensor, limit: float | None, micro_batch: int) -> torch.Tensor:
    """(samples, chunks, ...) noise rescaled as the 2025/2026 baseline: chunks go through `model.inverse`
    `micro_batch` at a time (`--eval-clip-batch-size`), and each call's noise is rescaled so its largest
    magnitude over the whole call is at most sqrt(limit). So the micro-batch size changes the numbers."""
    if micro_batch < 1:
        raise ValueError(f"generate.eval_clip_batch_size must be >= 1, got {micro_batch}")
    parts = [clip_noise(part, limit) for part in noise.split(micro_batch, dim=1)]
    return torch.cat(parts, dim=1)


@torch.no_grad()
def _sample_chunked(model: REGNN, video: np.ndarray, audio: np.ndarray, frames: int, position: int, samples: int,
                    noise_limit: float | None, micro_batch: int, seed: int, device: torch.device,
                    modify: bool) -> np.ndarray:
    """(samples, frames, 25) for one clip given as (chunks, window, D) feature chunks.

    The clip's chunks are perceived in one call and decoded `micro_batch` chunks per call, sample by sample,
    as the official loop; the noise comes from the clip's own generator (seed, position), so no other
    batching changes a number. (The fixed-point inverse stops when its whole call has converged, which
    is a second way the micro-batch size matters, as in the official code.)
    """
    n, window = video.shape[:2]
    mu, edge = model.perceive(torch.from_numpy(video).to(device), torch.from_numpy(audio).to(device))
    noise = torch.randn((samples, n, *mu.shape[1:]), generator=torch.Generator().manual_seed(seed * 1_000_003
                                                                                           + position))
    noise = micro_batch_noise(noise, noise_limit, micro_batch).to(device)
    out = torch.empty(samples, n, window, EMOTION_DIMS, device=device)
    for j in range(samples):
        for lo in range(0, n, micro_batch):
            hi = min(n, lo + micro_batch)
            out[j, lo:hi] = model.decode(mu[lo:hi] + noise[j, lo:hi], edge[lo:hi])
    if modify:
        out = modify_aus(out)
    return out.reshape(samples, n * window, EMOTION_DIMS)[:, :frames].cpu().numpy()


def generate_chunks(checkpoint: Path, emotions: Path, video_shards: Sequence[Path], audio_shards: Sequence[Path],
                    settings: dict[str, Any] | None, seed: int, output: Path, threads: int | None = None) -> None:
    """MARS: write the variable-length predictions file MARS evaluation reads: `clips` (sample keys),
    `offsets` (samples + 1) and `predictions` (sum of lengths, samples, 25) float32."""
    s, device, state = _start(checkpoint, settings, threads)
    data = load_mars_split(Path(emotions), video_shards, audio_shards)
    model = _load_model(checkpoint, state, data.dims, device)
    window = state["settings"]["model"]["window"]
    lengths = data.lengths
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    samples = s["samples"]
    with atomic_output(output) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("clips", data=np.array(data.samples, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("offsets", data=offsets)
        out = f.create_dataset("predictions", (int(offsets[-1]), samples, EMOTION_DIMS), dtype="float32",
                               chunks=(min(int(offsets[-1]), 1024), samples, EMOTION_DIMS))
        f.attrs.update(checkpoint_epoch=state["epoch"], samples=samples, seed=seed, modify=s["modify"],
                       eval_clip_batch_size=s["eval_clip_batch_size"],
                       noise_clip=-1.0 if s["noise_clip"] is None else s["noise_clip"])
        for k in tqdm(range(len(lengths)), desc="generate", unit="clip", dynamic_ncols=True):
            row = data.input_row[k]
            pred = _sample_chunked(model, clip_chunks(data.video.series(row), window),
                                   clip_chunks(data.audio.series(row), window), int(lengths[k]), k, samples,
                                   s["noise_clip"], s["eval_clip_batch_size"], seed, device, s["modify"])
            out[offsets[k]:offsets[k + 1]] = pred.transpose(1, 0, 2)
    log.info("wrote %d clips x %d samples (%d frames) to %s", len(lengths), samples, offsets[-1], output)


def export_official(predictions: Path, out_dir: Path) -> None:
    """Write `<out_dir>/<speaker_path>/result-{j}.pth` (CPU (frames, 25) tensors), the official layout.

    The folder is built beside `out_dir` and renamed into place, so no half-written export is left.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        with h5py.File(predictions, "r") as f:
            clips = decode_strings(f["clips"][()])
            preds = f["predictions"]
            offsets = f["offsets"][()] if "offsets" in f else None  # MARS: (sum L, samples, 25)
            for k, clip in enumerate(tqdm(clips, desc="export", unit="clips", dynamic_ncols=True)):
                folder = tmp / clip
                folder.mkdir(parents=True, exist_ok=True)
                clip_preds = preds[k] if offsets is None else preds[offsets[k]:offsets[k + 1]].transpose(1, 0, 2)
                for j, sample in enumerate(clip_preds):
                    torch.save(torch.from_numpy(np.array(sample)), folder / f"result-{j}.pth")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def generate_experiment(config: dict[str, Any], experiment: str, seed: int, split: str,
                        results: Path = RESULTS.root, epoch: int | None = None, **kwargs: Any) -> Path:
    """Generate with the standard result layout (what the CLI uses); returns the predictions file."""
    from regnn import protocols  # the stage's own floor; imported here as only this entry point needs it

    protocol = protocols.get(config.get("data", {}).get("protocol"))
    config = protocol.configured(config)
    settings = resolve_generate_settings(config.get("generate"))
    layout = Results(results)
    checkpoint = select_checkpoint(layout.checkpoint_dir(experiment, seed),
                                   epoch if epoch is not None else settings["epoch"])
    files = experiment_files(config, experiment, split, layout)
    output = layout.predictions(experiment, seed, split)
    protocol.generate(checkpoint, files["emotions"], files["video"], files["audio"], settings, seed, output,
                      **kwargs)
    return output
