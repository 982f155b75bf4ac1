"""REGNN training: seeded, checkpointed every few epochs, resumable after a kill with identical results.

Every epoch re-seeds torch and numpy from (seed, epoch), so an epoch's batches, neighbour draws and dropout
masks depend only on the state at its start. After each epoch the full state (model, optimiser, loss
threshold, logged rows) is written atomically to a resume folder that is not a Snakemake output (Snakemake
deletes declared outputs before a rerun); a restarted run continues from it and ends with the same weights
as an uninterrupted run. Checkpoint outputs are hard links to copies kept in that folder, so a rerun after a
kill can restore the ones Snakemake deleted without storing them twice. Bitwise equality holds for the same
device and thread count (float reductions depend on both); CPU runs are deterministic, CUDA runs close.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from regnn.data.windows import Batch, WindowSampler, load_split, prefetched_batches
from regnn.devices import choose_device
from regnn.io import atomic_output
from regnn.losses import best_neighbour_mse, mid_loss, smoothness_loss
from regnn.model.regnn import REGNN
from regnn.paths import Results, checkpoint_name
from regnn.settings import (checkpoint_epochs, experiment_files, experiment_settings, resolve_model_settings,
                            resolve_train_settings)

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1

TSV_COLUMNS = ["epoch", "lr", "loss", "best_mse", "mid", "smooth", "logdet", "threshold", "seconds",
               "input_seconds"]


def learning_rate(settings: dict[str, Any], epoch: int) -> float:
    """Warm-up multi-step schedule (0-based epoch), as the reference's WarmupMultiStepLR stepped per epoch."""
    factor = 1.0
    if epoch < settings["warmup_epochs"]:
        alpha = epoch / settings["warmup_epochs"]
        factor = settings["warmup_factor"] * (1 - alpha) + alpha
    decays = bisect.bisect_right(sorted(settings["milestones"]), epoch)
    return settings["lr"] * factor * settings["gamma"] ** decays


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _fingerprint(model: dict, train: dict, seed: int, inputs: Sequence[Path]) -> str:
    """Identifies a run so a resume folder left by different settings or inputs is never continued."""
    files = [(str(Path(p).resolve()), Path(p).stat().st_size, Path(p).stat().st_mtime_ns) for p in inputs]
    blob = json.dumps([model, train, seed, files], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _augment(video: torch.Tensor, augment: dict[str, float]) -> torch.Tensor:
    """Feature-level augmentation of the video windows (training only): Gaussian noise, then dropout."""
    if augment["noise_std"] > 0:
        video = video + torch.randn_like(video) * augment["noise_std"]
    if augment["dropout"] > 0:
        video = F.dropout(video, augment["dropout"], training=True)
    return video


def training_step(model: REGNN, batch: Batch, settings: dict[str, Any],
                  threshold: float | None) -> dict[str, torch.Tensor]:
    """Losses of one batch (nothing is stepped): best-neighbour MSE, MidLoss, smoothness, log-det."""
    mu, edge = model.perceive(_augment(batch.video, settings["augment"]), batch.audio)
    edges = torch.repeat_interleave(edge, batch.counts, dim=0, output_size=batch.targets.shape[0])
    with_logdet = settings["logdet_weight"] > 0
    codes, logdet = model.encode(batch.targets, edges, with_logdet=with_logdet)
    parts = {
        "best_mse": best_neighbour_mse(mu, codes, batch.counts, threshold),
        "mid": mid_loss(codes, batch.counts),
        "smooth": smoothness_loss(codes),
        # Negative log-likelihood term of the flow, per latent element so it is on the MSE's scale.
        "logdet": -logdet.mean() / codes[0].numel() if with_logdet else torch.zeros((), device=mu.device),
    }
    parts["loss"] = (parts["best_mse"] + settings["mid_weight"] * parts["mid"]
                     + settings["smooth_weight"] * parts["smooth"] + settings["logdet_weight"] * parts["logdet"])
    return parts


def _save_atomic(obj: dict[str, Any], path: Path) -> None:
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


def _link(source: Path, target: Path) -> None:
    """Expose a resume copy as a checkpoint output (hard link; a copy where links are not possible)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        with atomic_output(target) as tmp:
            shutil.copy2(source, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint or resume state, loaded safely (`weights_only=True`) onto the CPU."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a REGNN checkpoint of format {CHECKPOINT_FORMAT}")
    return state


def train(emotions: Path, video_shards: Sequence[Path], audio_shards: Sequence[Path], settings: dict[str, Any],
          seed: int, checkpoint_dir: Path, train_tsv: Path, tensorboard_dir: Path, resume_dir: Path,
          threads: int | None = None, on_epoch_end: Callable[[int], None] | None = None) -> None:
    """Train one experiment x seed; `settings` holds `model` and `train` (see `experiment_settings`).

    `on_epoch_end(epoch)` runs after each epoch's state is saved (tests use it to simulate a kill).
    """
    emotions, checkpoint_dir, resume_dir = Path(emotions), Path(checkpoint_dir), Path(resume_dir)
    model_s = resolve_model_settings(settings.get("model"))
    train_s = resolve_train_settings(settings.get("train"))
    if threads:
        torch.set_num_threads(threads)
    device = choose_device(train_s["device"])
    data = load_split(emotions, video_shards, audio_shards)
    dims = {"video": data.video_dim, "audio": data.audio_dim}
    sampler = WindowSampler(data, model_s["window"], model_s["stride"], train_s["neighbours"])
    fingerprint = _fingerprint(model_s, train_s, seed, [emotions, *video_shards, *audio_shards])

    torch.manual_seed(seed)
    model = REGNN(data.video_dim, data.audio_dim, model_s).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=train_s["lr"], weight_decay=train_s["weight_decay"])
    start, threshold, rows = 0, None, []
    state_path = resume_dir / "state.pt"
    if state_path.is_file():
        state = load_checkpoint(state_path)
        if state["fingerprint"] == fingerprint:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start, threshold, rows = state["epoch"], state["threshold"], state["rows"]
            log.info("resuming from %s after epoch %d", state_path, start)
        else:
            log.warning("%s belongs to other settings or data; starting over", resume_dir)
            shutil.rmtree(resume_dir)
    for epoch in checkpoint_epochs(train_s):
        if epoch <= start:
            _link(resume_dir / checkpoint_name(epoch), checkpoint_dir / checkpoint_name(epoch))

    from torch.utils.tensorboard import SummaryWriter  # imported late: it is slow to import

    shutil.rmtree(tensorboard_dir, ignore_errors=True)  # no stale or duplicate events from an earlier try
    writer = SummaryWriter(str(tensorboard_dir))
    for row in rows:  # a resumed run rewrites the epochs it already did
        _log_row(writer, row)
    batch_size, per_epoch = train_s["batch_size"], train_s["batches_per_epoch"]
    n_batches = min(per_epoch, math.ceil(sampler.n_windows / batch_size))
    targets = set(checkpoint_epochs(train_s))
    progress = tqdm(total=train_s["epochs"] * n_batches, initial=start * n_batches, desc="train",
                    unit="batch", dynamic_ncols=True)
    model.train()
    for epoch in range(start, train_s["epochs"]):
        began = time.perf_counter()
        lr = learning_rate(train_s, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        torch.manual_seed(_epoch_seed(seed, epoch))
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(sampler.n_windows)[: n_batches * batch_size]
        sums = {k: torch.zeros((), device=device) for k in ("loss", "best_mse", "mid", "smooth", "logdet")}
        input_seconds = 0.0
        batches = prefetched_batches(sampler, order, batch_size, n_batches, rng)
        for _ in range(n_batches):
            t0 = time.perf_counter()  # input time = how long the step waits for its batch
            batch = next(batches).to(device)
            input_seconds += time.perf_counter() - t0
            parts = training_step(model, batch, train_s, threshold)
            optimizer.zero_grad(set_to_none=True)
            parts["loss"].backward()
            optimizer.step()
            for key in sums:  # summed on the device: no GPU sync per step
                sums[key] += parts[key].detach()
            progress.update()
        means = {k: float(v) / n_batches for k, v in sums.items()}
        progress.set_postfix(epoch=epoch + 1, loss=f"{means['loss']:.4f}")
        divisor = train_s["threshold_divisor"]
        threshold = means["best_mse"] / divisor if divisor else None
        row = {"epoch": epoch + 1, "lr": lr, **means, "threshold": threshold,
               "seconds": time.perf_counter() - began, "input_seconds": input_seconds}
        rows.append(row)
        _log_row(writer, row)
        state = {"format": CHECKPOINT_FORMAT, "epoch": epoch + 1, "seed": seed, "dims": dims,
                 "settings": {"model": model_s, "train": train_s}, "fingerprint": fingerprint,
                 "threshold": threshold, "rows": rows,
                 "model": model.state_dict(), "optimizer": optimizer.state_dict()}
        if epoch + 1 in targets:
            kept = resume_dir / checkpoint_name(epoch + 1)
            _save_atomic(state, kept)
            _link(kept, checkpoint_dir / checkpoint_name(epoch + 1))
        _save_atomic(state, state_path)
        log.info("epoch %d: loss %.5f (best-neighbour MSE %.5f, mid %.5f), lr %.2g, %.1f s", epoch + 1,
                 means["loss"], means["best_mse"], means["mid"], lr, row["seconds"])
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1)
    progress.close()
    writer.close()
    _write_tsv(rows, Path(train_tsv))
    shutil.rmtree(resume_dir)  # checkpoint outputs keep their data: they are links to the same files


def _log_row(writer: Any, row: dict[str, Any]) -> None:
    for key in ("loss", "best_mse", "mid", "smooth", "logdet", "lr", "seconds"):
        writer.add_scalar(f"train/{key}", row[key], row["epoch"])


def _write_tsv(rows: list[dict[str, Any]], path: Path) -> None:
    with atomic_output(path) as tmp:
        with tmp.open("w", newline="") as f:
            out = csv.DictWriter(f, TSV_COLUMNS, delimiter="\t", lineterminator="\n")
            out.writeheader()
            for row in rows:
                out.writerow({k: ("" if row[k] is None else row[k]) for k in TSV_COLUMNS})


def train_experiment(config: dict[str, Any], experiment: str, seed: int, results: Path = Path("results"),
                     **kwargs: Any) -> None:
    """Train with the standard result layout (what the CLI uses; the Snakemake rule passes paths itself)."""
    layout = Results(results)
    files = experiment_files(config, experiment, config["splits"]["train"], layout)
    train(files["emotions"], files["video"], files["audio"], experiment_settings(config, experiment), seed,
          layout.checkpoint_dir(experiment, seed), layout.train_tsv(experiment, seed),
          layout.tensorboard_dir(experiment, seed), layout.resume_dir(experiment, seed), **kwargs)
