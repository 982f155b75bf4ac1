"""The REACT reference rows, defined as in the challenge's `run_baselines.py`.

- ground_truth: every sample is the listener's real reaction;
- mime: every sample is the speaker's own emotion series;
- random: every value uniform in [0, 1), from a fixed seed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from regnn.data.index import load_emotions
from regnn.metrics.evaluate import EvaluationSet, official_lines, score, write_metrics
from regnn.metrics.settings import BASELINES, resolve_settings

log = logging.getLogger(__name__)


def baseline_predictions(name: str, speaker: np.ndarray, listener: np.ndarray, samples: int = 10,
                         seed: int = 0) -> np.ndarray:
    """(N, samples, frames, dims) float32 predictions of one baseline."""
    if name == "ground_truth":
        return np.repeat(listener[:, None], samples, axis=1)
    if name == "mime":
        return np.repeat(speaker[:, None], samples, axis=1)
    if name == "random":
        rng = np.random.default_rng(seed)
        return rng.random((listener.shape[0], samples, *listener.shape[1:]), dtype=np.float32)
    raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")


def evaluate_baseline(name: str, emotions_h5: Path, output: Path, settings: Mapping | None = None,
                      threads: int | None = None) -> dict[str, float]:
    """The `baseline` rule: score one baseline on a split and write its metrics TSV.

    `settings` is the config's `evaluate` section; its `baselines` entry sets samples and the random seed.
    """
    settings = resolve_settings(settings)
    b = settings["baselines"]
    cache = load_emotions(emotions_h5)
    pred = baseline_predictions(name, cache.speaker, cache.listener, int(b["samples"]), int(b["seed"]))
    data = EvaluationSet(cache.clips, pred, cache.speaker, cache.listener, cache.neighbours)
    metrics = score(data, settings, threads)
    for line in official_lines(metrics, model_name=name):
        log.info("%s", line)
    write_metrics(output, metrics)
    return metrics
