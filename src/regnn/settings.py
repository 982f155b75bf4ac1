"""Settings: the paper's model, train and generate defaults, the extractors' and render's, and the one merge rule.

The merge rule (`resolve`) is the same for every section of the config: the given settings merge into the
defaults recursively, and a key the defaults do not have is an error, so a typo cannot silently do nothing.
Standard library only, so the workflow computes rule params and checkpoint file names while it plans the DAG.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from regnn.paths import RESULTS, Results

PAPER_MODEL: dict[str, Any] = {
    "window": 50,
    "stride": 25,
    "perceptual": {
        "dim": 128, "heads": 4, "layers": 5, "attn_dropout": 0.0, "relu_dropout": 0.1, "res_dropout": 0.1,
        "embed_dropout": 0.25, "out_dropout": 0.0, "output_dim": 64,
        "zero_frames_are_padding": True,  # reference quirk: channel-0 == 0 frames get no positional embedding
    },
    "cognitive": {"edge_channels": 8, "edge_neighbours": 5, "union_mask": True},
    "gnn": {
        "layers": 2, "width": 50, "act": "ELU", "actnorm": True, "lipschitz_offset": 5.0,
        "inverse_iters": 5, "inverse_tol": 1.0e-3, "logdet_terms": 5, "logdet_samples": 1,
    },
}

PAPER_TRAIN: dict[str, Any] = {
    "epochs": 100,
    "batches_per_epoch": 101,  # None: one pass over the sampler's windows (react2025: over the speaker clips)
    "batch_size": 128,
    "checkpoint_every": 5,
    # Checkpoints hold the weights after every*k + offset epochs (k >= 1) and after the last epoch. The
    # reference saves at 0-based epochs 5, 10, ..., 95, i.e. after 6, 11, ..., 96 epochs: offset 1.
    "checkpoint_offset": 1,
    "lr": 1.0e-4,
    "weight_decay": 5.0e-4,
    "milestones": [9],
    "gamma": 0.1,
    "warmup_epochs": 0,
    "warmup_factor": 0.01,
    "neighbours": 10,  # react2025: k_select, the paired listener + neighbours - 1 random others of the session
    "threshold_divisor": 3.0,
    # "reference": the threshold is (re)set only by an epoch that runs all batches_per_epoch batches (the
    # reference sets it at batch index train_iters = 100, so a split with fewer than 100 * 128 + 1 windows
    # never gets one). "never": the 2025/2026 baseline's behaviour (its update sits under
    # `i == train_iters` with train_iters = len(loader), which never fires). "every_epoch": set after every epoch.
    "threshold_rule": "reference",
    # react2025: clips shorter than a window (the official code crashes on them): "pad" (zero-padded
    # window, features and targets) or "skip"; the train log says how many.
    "short_clips": "pad",
    "mid_weight": 1.0,
    "smooth_weight": 0.0,
    "logdet_weight": 0.0,
    # "reference": loss += weight * sum over the batch's listener codes of log|det J| (the reference's sign
    # and scale: it adds the log-det, it does not subtract a likelihood). "nll": loss -= weight *
    # mean(log|det J|) / (25 * window), the flow's negative log-likelihood per latent element.
    "logdet_form": "reference",
    "augment": {"noise_std": 0.0, "dropout": 0.0},
    "device": "auto",
}

EXTRACTOR_DEFAULTS: dict[str, Any] = {
    "shards": 1,  # jobs per split; a cluster spreads a split over many GPU jobs
    "device": "auto",  # auto | cpu | cuda | cuda:N
    "bf16": False,  # bfloat16 autocast of the network (GPU); changes the numbers slightly
    "workers": 2,  # background threads decoding / preparing clips
    "prefetch": 2,  # clips prepared ahead of the one the network is working on
}
"""The settings every extractor kind shares (the rules read `shards`, `device` and `workers` while planning)."""

GENERATE_DEFAULTS: dict[str, Any] = {
    "samples": 10,
    "epoch": 96,  # epochs of training the generating weights hold (the reference's mhp-epoch95); None: the last
    "noise_clip": 0.06,  # None: plain N(0, 1) noise
    "modify": False,  # the reference's --modify: AU columns -> 1 where >= 1, else 0 (per window, before averaging)
    "batch_clips": 8,  # react2024: clips decoded together (memory only); react2025 generates clip by clip
    # react2025: chunks per model.inverse call (the official --eval-clip-batch-size: 1 in the 2026 README, 16
    # in the 2025 trainer). Not a speed knob: each call's noise is rescaled by its own max |noise|.
    "eval_clip_batch_size": 1,
    "device": "auto",
    "export_official": False,  # read by the workflow (rule export_official), not by generate()
}


RENDER_DEFAULTS: dict[str, Any] = {
    "clips": 2,  # reaction videos per split and experiment (evenly spread over the split; 0: none)
    "splits": None,  # None: every evaluated split
    "samples": 3,  # generated samples shown next to the real listener
    "size": 256,  # pixels per panel (REACT's videos are 256 x 256)
    "crf": 23,  # x264 quality (lower: better and larger)
    "thumbnail": {"seconds": 6, "fps": 5, "width": 480},  # the animated WebP beside each video
}


def merge_settings(base: dict[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """A deep copy of `base` with `overrides` merged in recursively (nested dicts merge, other values replace)."""
    merged = copy.deepcopy(base)
    for key, value in (overrides or {}).items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge_settings(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _check_keys(reference: Mapping[str, Any], given: Mapping[str, Any], where: str) -> None:
    for key, value in given.items():
        if key not in reference:
            raise ValueError(f"unknown setting {where}.{key}; known: {sorted(reference)}")
        # an empty mapping as the default is an open set of keyword arguments (model_args, random_config)
        if isinstance(reference[key], dict) and reference[key] and isinstance(value, Mapping):
            _check_keys(reference[key], value, f"{where}.{key}")


def resolve(defaults: dict[str, Any], settings: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    """The one merge rule: `defaults` with `settings` merged in recursively; unknown keys are an error
    naming where they are (`where` is the section's path in the config, e.g. `train` or `extractors.vggish`)."""
    _check_keys(defaults, settings or {}, where)
    return merge_settings(defaults, dict(settings or {}))


def resolve_model_settings(settings: dict[str, Any] | None) -> dict[str, Any]:
    return resolve(PAPER_MODEL, settings, "model")


def resolve_train_settings(settings: dict[str, Any] | None) -> dict[str, Any]:
    return resolve(PAPER_TRAIN, settings, "train")


def resolve_generate_settings(settings: dict[str, Any] | None) -> dict[str, Any]:
    return resolve(GENERATE_DEFAULTS, settings, "generate")


def experiment_settings(config: dict[str, Any], experiment: str) -> dict[str, Any]:
    """An experiment's extractors and its fully resolved model and train settings.

    A pure function of the config and the experiment name, so Snakemake can use it as `params` and rerun
    exactly the experiments whose settings changed.
    """
    try:
        exp = config["experiments"][experiment]
    except KeyError:
        raise ValueError(f"unknown experiment {experiment!r}; defined: {sorted(config['experiments'])}") from None
    return {
        "video": exp["video"],
        "audio": exp["audio"],
        "model": resolve_model_settings(merge_settings(config.get("model", {}), exp.get("model"))),
        "train": resolve_train_settings(merge_settings(config.get("train", {}), exp.get("train"))),
    }


def checkpoint_epochs(train_settings: dict[str, Any]) -> list[int]:
    """How many epochs of training each checkpoint holds: every*k + offset (k >= 1), and the last epoch."""
    s = resolve_train_settings(train_settings)
    every, offset, epochs = s["checkpoint_every"], s["checkpoint_offset"], s["epochs"]
    return sorted({*range(every + offset, epochs + 1, every), epochs})


def extractor_setting(config: dict[str, Any], extractor: str, key: str) -> Any:
    """One of the settings every extractor has (`shards`, `device`, `workers`, ...), its default filled in:
    what the rules and the CLI read without building the extractor."""
    return config["extractors"][extractor].get(key, EXTRACTOR_DEFAULTS[key])


def extractor_shards(config: dict[str, Any], extractor: str) -> int:
    """How many shard files (jobs per split) an extractor's features are cut into."""
    return int(extractor_setting(config, extractor, "shards"))


def experiment_files(config: dict[str, Any], experiment: str, split: str,
                     layout: Results = RESULTS) -> dict[str, Any]:
    """What an experiment reads for a split: the split's emotion cache and its two extractors' shard files."""
    s = experiment_settings(config, experiment)
    return {
        "emotions": layout.emotions(split),
        "video": layout.feature_shards(s["video"], split, extractor_shards(config, s["video"])),
        "audio": layout.feature_shards(s["audio"], split, extractor_shards(config, s["audio"])),
    }


def resolve_render_settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    return resolve(RENDER_DEFAULTS, settings, "render")
