"""REGNN training: seeded, checkpointed every few epochs, resumable after a kill with identical results.

`train()` is the sequence of its parts: start or resume (`_start_or_resume`), restore the checkpoint links of
a killed try (`_restore_checkpoint_links`), open TensorBoard (`_open_tensorboard`), then per epoch the lr
schedule (`learning_rate`), the batch loop (`_train_epoch`), the loss threshold (`next_threshold`) and saving
(`_save_epoch`). Every epoch re-seeds torch and numpy from (seed, epoch), so an epoch's batches, neighbour
draws and dropout masks depend only on the state at its start. After each epoch the full state (model, optimiser, loss
threshold, logged rows) is written atomically to a resume folder that is not a Snakemake output (Snakemake
deletes declared outputs before a rerun); a restarted run continues from it and ends with the same weights
as an uninterrupted run. Checkpoint outputs are hard links to copies kept in that folder, so a rerun after a
kill can restore the ones Snakemake deleted without storing them twice. Bitwise equality holds for the same
device and thread count (float reductions depend on both); CPU runs are deterministic, CUDA runs close.
The checkpoint format and its safe loading live in `regnn.checkpoints`.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from regnn import protocols
from regnn.checkpoints import CHECKPOINT_FORMAT, link_checkpoint, load_checkpoint, save_checkpoint
from regnn.data.mars_windows import MarsWindowSampler
from regnn.data.windows import Batch, WindowSampler, prefetched_batches
from regnn.devices import choose_device
from regnn.io import atomic_output
from regnn.losses import best_neighbour_mse, mid_loss, smoothness_loss
from regnn.model.regnn import REGNN
from regnn.paths import RESULTS, Results, checkpoint_name
from regnn.settings import (checkpoint_epochs, experiment_files, experiment_settings, resolve_model_settings,
                            resolve_train_settings)

log = logging.getLogger(__name__)

RESUME_STATE = "state.pt"
LOSS_PARTS = ("loss", "best_mse", "mid", "smooth", "logdet")
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


def _fingerprint(model: dict, train: dict, seed: int, inputs: Sequence[Path], *context: Any) -> str:
    """Identifies a run so a resume folder left by different settings or inputs is never continued."""
    files = [(str(Path(p).resolve()), Path(p).stat().st_size, Path(p).stat().st_mtime_ns) for p in inputs]
    blob = json.dumps([model, train, seed, files, *context], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _augment(video: torch.Tensor, augment: dict[str, float]) -> torch.Tensor:
    """Feature-level augmentation of the video windows (training only): Gaussian noise, then dropout."""
    if augment["noise_std"] > 0:
        video = video + torch.randn_like(video) * augment["noise_std"]
    if augment["dropout"] > 0:
        video = F.dropout(video, augment["dropout"], training=True)
    return video


def logdet_term(logdet: torch.Tensor, elements: int, form: str) -> torch.Tensor:
    """The log-det loss term of a batch's (L,) per-code log|det J| (multiplied by train.logdet_weight).

    "reference": + the sum over the batch, as the reference adds `logdets` to its loss. "nll": - the mean
    per latent element (`elements` = 25 x window), the flow's negative log-likelihood on the MSE's scale.
    """
    if form == "reference":
        return logdet.sum()
    if form == "nll":
        return -logdet.mean() / elements
    raise ValueError(f"unknown train.logdet_form {form!r}; choose reference or nll")


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
        "logdet": (logdet_term(logdet, codes[0].numel(), settings["logdet_form"]) if with_logdet
                   else torch.zeros((), device=mu.device)),
    }
    parts["loss"] = (parts["best_mse"] + settings["mid_weight"] * parts["mid"]
                     + settings["smooth_weight"] * parts["smooth"] + settings["logdet_weight"] * parts["logdet"])
    return parts


@dataclass
class _Run:
    """What a training run carries from epoch to epoch (and what the resume state restores)."""

    model: REGNN
    optimizer: torch.optim.Optimizer
    start: int = 0  # epochs already done
    threshold: float | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)


def _start_or_resume(model_s: dict, train_s: dict, seed: int, dims: dict[str, int], device: torch.device,
                     fingerprint: str, resume_dir: Path) -> _Run:
    """A fresh seeded model and optimiser, continued from the resume state when it belongs to this run."""
    torch.manual_seed(seed)
    model = REGNN(dims["video"], dims["audio"], model_s).to(device)
    run = _Run(model, torch.optim.Adam(model.parameters(), lr=train_s["lr"], weight_decay=train_s["weight_decay"]))
    state_path = resume_dir / RESUME_STATE
    if not state_path.is_file():
        return run
    state = load_checkpoint(state_path)
    if state["fingerprint"] != fingerprint:
        log.warning("%s belongs to other settings or data; starting over", resume_dir)
        shutil.rmtree(resume_dir)
        return run
    model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.start, run.threshold, run.rows = state["epoch"], state["threshold"], state["rows"]
    log.info("resuming from %s after epoch %d", state_path, run.start)
    return run


def _restore_checkpoint_links(train_s: dict, done: int, resume_dir: Path, checkpoint_dir: Path) -> None:
    """Re-expose the checkpoints of epochs already done (Snakemake deleted the outputs of the killed try)."""
    for epochs in checkpoint_epochs(train_s):
        if epochs <= done:
            link_checkpoint(resume_dir / checkpoint_name(epochs), checkpoint_dir / checkpoint_name(epochs))


def _open_tensorboard(tensorboard_dir: Path, rows: list[dict[str, Any]]) -> Any:
    """A fresh event folder, with the epochs a resumed run already did written again."""
    from torch.utils.tensorboard import SummaryWriter  # imported late: it is slow to import

    shutil.rmtree(tensorboard_dir, ignore_errors=True)  # no stale or duplicate events from an earlier try
    writer = SummaryWriter(str(tensorboard_dir))
    for row in rows:
        _log_row(writer, row)
    return writer


def _train_epoch(run: _Run, sampler: WindowSampler | MarsWindowSampler, train_s: dict, seed: int, epoch: int,
                 n_batches: int, device: torch.device, progress: tqdm) -> tuple[dict[str, float], float]:
    """One epoch (0-based `epoch`), seeded from (seed, epoch): mean losses and seconds spent waiting for input."""
    batch_size = train_s["batch_size"]
    torch.manual_seed(_epoch_seed(seed, epoch))
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(sampler.n_windows)[: n_batches * batch_size]
    sums = {k: torch.zeros((), device=device) for k in LOSS_PARTS}
    input_seconds = 0.0
    batches = prefetched_batches(sampler, order, batch_size, n_batches, rng)
    for _ in range(n_batches):
        t0 = time.perf_counter()  # input time = how long the step waits for its batch
        batch = next(batches).to(device)
        input_seconds += time.perf_counter() - t0
        parts = training_step(run.model, batch, train_s, run.threshold)
        run.optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        run.optimizer.step()
        for key in sums:  # summed on the device: no GPU sync per step
            sums[key] += parts[key].detach()
        progress.update()
    return {k: float(v) / n_batches for k, v in sums.items()}, input_seconds


def next_threshold(train_s: dict[str, Any], threshold: float | None, best_mse: float,
                   n_batches: int) -> float | None:
    """The loss threshold after an epoch of `n_batches` batches whose mean best-neighbour MSE was `best_mse`.

    The reference sets it (to the mean / 3) only in an epoch that reaches batch index train_iters, i.e. runs
    all batches_per_epoch batches; otherwise the previous threshold (or none) stays ("reference" rule).
    """
    rule, divisor = train_s["threshold_rule"], train_s["threshold_divisor"]
    if rule not in ("reference", "never", "every_epoch"):
        raise ValueError(f"unknown train.threshold_rule {rule!r}; choose reference, never or every_epoch")
    if not divisor or rule == "never":
        return None
    if rule == "every_epoch" or n_batches == train_s["batches_per_epoch"]:
        return best_mse / divisor
    return threshold


def _save_epoch(state: dict[str, Any], keep: bool, resume_dir: Path, checkpoint_dir: Path) -> None:
    """The resume state after every epoch; a kept checkpoint (and its output link) on the schedule."""
    if keep:
        kept = resume_dir / checkpoint_name(state["epoch"])
        save_checkpoint(state, kept)
        link_checkpoint(kept, checkpoint_dir / checkpoint_name(state["epoch"]))
    save_checkpoint(state, resume_dir / RESUME_STATE)


def epoch_batches(train_s: dict[str, Any], n_windows: int) -> int:
    """Batches per epoch: batches_per_epoch, at most one pass over the windows; None: one pass (react2025's
    epoch is one pass over the speaker clips, the last batch smaller)."""
    one_pass = math.ceil(n_windows / train_s["batch_size"])
    return one_pass if train_s["batches_per_epoch"] is None else min(train_s["batches_per_epoch"], one_pass)


def train(emotions: Path, video_shards: Sequence[Path], audio_shards: Sequence[Path], settings: dict[str, Any],
          seed: int, checkpoint_dir: Path, train_tsv: Path, tensorboard_dir: Path, resume_dir: Path,
          threads: int | None = None, on_epoch_end: Callable[[int], None] | None = None,
          protocol: str | None = None, resampling: dict[str, Any] | None = None) -> None:
    """Train one experiment x seed; `settings` holds `model` and `train` (see `experiment_settings`).

    The protocol (`data.protocol`) draws the windows; `resampling` is the evaluate section's, with which
    react2025 length-aligns listener targets as its metrics do. `on_epoch_end(epoch)` runs after each
    epoch's state is saved (tests use it to simulate a kill).
    """
    emotions, checkpoint_dir, resume_dir = Path(emotions), Path(checkpoint_dir), Path(resume_dir)
    model_s = resolve_model_settings(settings.get("model"))
    train_s = resolve_train_settings(settings.get("train"))
    if threads:
        torch.set_num_threads(threads)
    device = choose_device(train_s["device"])
    chosen = protocols.get(protocol)
    sampler = chosen.training_windows(emotions, video_shards, audio_shards, model_s, train_s, resampling)
    dims = sampler.dims
    fingerprint = _fingerprint(model_s, train_s, seed, [emotions, *video_shards, *audio_shards], chosen.name,
                               resampling)

    run = _start_or_resume(model_s, train_s, seed, dims, device, fingerprint, resume_dir)
    _restore_checkpoint_links(train_s, run.start, resume_dir, checkpoint_dir)
    writer = _open_tensorboard(Path(tensorboard_dir), run.rows)
    n_batches = epoch_batches(train_s, sampler.n_windows)
    if train_s["threshold_divisor"] and train_s["threshold_rule"] == "never":
        log.warning("train.threshold_rule never: as in the 2025/2026 baseline, the loss threshold is never set "
                    "(every_epoch sets it)")
    elif train_s["threshold_divisor"] and train_s["threshold_rule"] == "reference" \
            and n_batches != train_s["batches_per_epoch"]:
        log.warning("an epoch has %d batches, not batches_per_epoch = %s: as in the reference, the loss threshold "
                    "is never set (train.threshold_rule: every_epoch sets it anyway)", n_batches,
                    train_s["batches_per_epoch"])
    log.info("%d windows per epoch (%s), %d batches of up to %d", sampler.n_windows, chosen.name, n_batches,
             train_s["batch_size"])
    kept = set(checkpoint_epochs(train_s))
    progress = tqdm(total=train_s["epochs"] * n_batches, initial=run.start * n_batches, desc="train",
                    unit="batch", dynamic_ncols=True)
    run.model.train()
    for epoch in range(run.start, train_s["epochs"]):
        began = time.perf_counter()
        lr = learning_rate(train_s, epoch)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        means, input_seconds = _train_epoch(run, sampler, train_s, seed, epoch, n_batches, device, progress)
        progress.set_postfix(epoch=epoch + 1, loss=f"{means['loss']:.4f}")
        run.threshold = next_threshold(train_s, run.threshold, means["best_mse"], n_batches)
        row = {"epoch": epoch + 1, "lr": lr, **means, "threshold": run.threshold,
               "seconds": time.perf_counter() - began, "input_seconds": input_seconds}
        run.rows.append(row)
        _log_row(writer, row)
        state = {"format": CHECKPOINT_FORMAT, "epoch": epoch + 1, "seed": seed, "dims": dims,
                 "settings": {"model": model_s, "train": train_s}, "fingerprint": fingerprint,
                 "threshold": run.threshold, "rows": run.rows,
                 "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict()}
        _save_epoch(state, epoch + 1 in kept, resume_dir, checkpoint_dir)
        log.info("epoch %d: loss %.5f (best-neighbour MSE %.5f, mid %.5f), lr %.2g, %.1f s", epoch + 1,
                 means["loss"], means["best_mse"], means["mid"], lr, row["seconds"])
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1)
    progress.close()
    writer.close()
    _write_tsv(run.rows, Path(train_tsv))
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


def train_experiment(config: dict[str, Any], experiment: str, seed: int, results: Path = RESULTS.root,
                     **kwargs: Any) -> None:
    """Train with the standard result layout (what the CLI uses; the Snakemake rule passes paths itself)."""
    layout = Results(results)
    protocol = protocols.get(config.get("data", {}).get("protocol"))
    config = protocol.configured(config)
    files = experiment_files(config, experiment, config["splits"]["train"], layout)
    train(files["emotions"], files["video"], files["audio"], experiment_settings(config, experiment), seed,
          layout.checkpoint_dir(experiment, seed), layout.train_tsv(experiment, seed),
          layout.tensorboard_dir(experiment, seed), layout.resume_dir(experiment, seed), protocol=protocol.name,
          resampling=protocol.training_resampling(config.get("evaluate", {})), **kwargs)
