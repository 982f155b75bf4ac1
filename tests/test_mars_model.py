"""REGNN on MARS (react2025): ragged features, the 2025/2026 training windows, chunked generation, the summary."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from model_toy import TINY_MODEL, mars_toy_split, tiny_train

from regnn import protocols
from regnn.data import mars
from regnn.data.mars_windows import MarsWindowSampler, clip_chunks, load_mars_split
from regnn.feature_store import load_ragged, write_shard
from regnn.generation import generate_chunks, micro_batch_noise
from regnn.metrics import mars as mars_metrics
from regnn.metrics import mars_evaluate
from regnn.settings import resolve_train_settings
from regnn.training import train

PROTOCOL = protocols.get("react2025")


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two clips shorter than a window (the official training crashes on them)."""
    return mars_toy_split(tmp_path_factory.mktemp("mars-toy"))


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every clip long enough to score (TLCC needs more than 49 frames; MARS clips have 58 or more)."""
    return mars_toy_split(tmp_path_factory.mktemp("mars-scored"), lengths=(130, 61, 97, 250, 58, 75), seed=1)


def _sampler(toy: dict, k_select: int = 2, short_clips: str = "pad", resample=mars_metrics.interpolate):
    data = load_mars_split(toy["emotions"], toy["video"], toy["audio"])
    return MarsWindowSampler(data, 50, k_select, PROTOCOL.appropriateness(toy), resample, short_clips)


def test_ragged_features_are_concatenated_with_offsets_and_bad_shards_are_named(tmp_path: Path) -> None:
    a, b = np.ones((70, 3), np.float32), np.arange(2 * 3, dtype=np.float32).reshape(2, 3)
    write_shard(tmp_path / "s0.h5", {"speaker/session0/a": a}, "x", {})
    write_shard(tmp_path / "s1.h5", {"listener/session0/a": b}, "x", {})
    shards = [tmp_path / "s0.h5", tmp_path / "s1.h5"]
    ragged = load_ragged(shards, ["listener/session0/a", "speaker/session0/a"], [2, 70])
    assert ragged.values.shape == (72, 3) and ragged.offsets.tolist() == [0, 2, 72]
    assert np.array_equal(ragged.series(0), b) and np.array_equal(ragged.series(1), a)
    with pytest.raises(ValueError, match=r"s0.h5: clip speaker/session0/a .* shape \(70, 3\).* 69 frames"):
        load_ragged(shards, ["speaker/session0/a"], [69])
    with pytest.raises(ValueError, match=r"missing from feature shards .*s0.h5.*speaker/session0/zz"):
        load_ragged(shards, ["speaker/session0/zz"], [5])


def test_split_loading_checks_lengths_against_the_emotion_cache(toy: dict, tmp_path: Path) -> None:
    data = load_mars_split(toy["emotions"], toy["video"], toy["audio"])
    assert data.samples == toy["clips"] and data.dims == {"video": 12, "audio": 6}
    k = data.samples.index("speaker/session1/stem3")
    assert data.lengths[k] == 250 and np.array_equal(data.video.series(data.input_row[k]),
                                                     toy["video_features"]["speaker/session1/stem3"])
    short = {c: v[:-1] for c, v in toy["video_features"].items()}
    write_shard(tmp_path / "short.h5", short, "toy_video", {})
    with pytest.raises(ValueError, match=r"video features .*short.h5: clip listener/session0/stem0 .* 133 frames"):
        load_mars_split(toy["emotions"], [tmp_path / "short.h5"], toy["audio"])


def test_one_random_window_per_clip_with_session_targets_aligned_by_the_metrics_resampling(toy: dict) -> None:
    calls = []

    def spy(target: np.ndarray, length: int) -> np.ndarray:
        calls.append((len(target), length))
        return mars_metrics.interpolate(target, length)

    sampler = _sampler(toy, resample=spy)
    data = sampler.data
    assert sampler.n_windows == len(data.samples) == 12  # an epoch: one window per clip (direction both)
    batch = sampler.batch(np.arange(sampler.n_windows), np.random.default_rng(0))
    assert batch.video.shape == (12, 50, 12)
    appropriate = PROTOCOL.appropriateness(toy)
    row = 0
    for b, k in enumerate(range(12)):
        frames = int(data.lengths[k])
        start = int(batch.video[b, 0, 0])  # video feature 0 is the frame index
        assert int(batch.video[b, 0, 1]) == data.input_row[k] or frames < 50
        n = min(50, frames)
        assert np.array_equal(batch.video[b, :n].numpy(), data.video.series(data.input_row[k])[start:start + n])
        session = len(appropriate[k])
        assert batch.counts[b] == min(2, session)  # the paired listener + 1 other of the session
        paired = data.cache.series(int(data.cache.listener_index[k]))
        expected = mars_metrics.interpolate(paired, frames)[start:start + n]  # aligned first, then cropped
        assert np.array_equal(batch.targets[row, :n].numpy(), expected)
        assert not batch.targets[row, n:].any()  # a short clip's window is zero-padded
        row += int(batch.counts[b])
    assert all(length == data.lengths[k] for (_, length), k in zip(calls[::1], np.repeat(
        np.arange(12), batch.counts.numpy()))), calls
    everyone = _sampler(toy, k_select=10).batch(np.arange(12), np.random.default_rng(0))
    assert everyone.counts.tolist() == [len(a) for a in appropriate]  # all of them when the session has fewer


def test_short_clips_are_padded_or_skipped_and_logged(toy: dict, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        padded = _sampler(toy)
    assert "2 of 12 clips are shorter than a 50-frame window" in caplog.text and "zero-padded" in caplog.text
    skipped = _sampler(toy, short_clips="skip")
    assert padded.n_windows == 12 and skipped.n_windows == 10
    assert all(skipped.data.lengths[k] >= 50 for k in skipped.samples)
    with pytest.raises(ValueError, match="short_clips"):
        _sampler(toy, short_clips="crash")


def test_the_protocol_aligns_training_targets_with_the_metrics_resampling(toy: dict) -> None:
    sampler = PROTOCOL.training_windows(toy["emotions"], toy["video"], toy["audio"], {"window": 50},
                                        resolve_train_settings(PROTOCOL.defaults["train"]), {"checkpoint": None})
    assert sampler.resample is mars_metrics.interpolate and sampler.k_select == 2


def test_react2025_training_defaults_are_the_official_baselines() -> None:
    config = PROTOCOL.configured({"train": {"epochs": 3}, "generate": {}})
    train_s = resolve_train_settings(config["train"])
    assert {k: train_s[k] for k in ("lr", "weight_decay", "milestones", "gamma", "batch_size", "neighbours",
                                    "threshold_rule", "batches_per_epoch", "checkpoint_every")} == {
        "lr": 1e-4, "weight_decay": 5e-4, "milestones": [9], "gamma": 0.1, "batch_size": 64, "neighbours": 2,
        "threshold_rule": "never", "batches_per_epoch": None, "checkpoint_every": 5}
    assert train_s["epochs"] == 3  # the config's own values win
    assert config["generate"] == {"epoch": None, "eval_clip_batch_size": 1}
    assert protocols.get("react2024").configured({"train": {"epochs": 3}}) == {"train": {"epochs": 3}}


def _train(toy: dict, out: Path, **train_overrides) -> Path:
    settings = tiny_train(**{"batches_per_epoch": None, "batch_size": 5, "epochs": 2, "checkpoint_every": 1,
                             "threshold_rule": "never", "neighbours": 2, **train_overrides})
    train(toy["emotions"], toy["video"], toy["audio"], {"model": TINY_MODEL, "train": settings}, 1,
          out / "checkpoints", out / "train.tsv", out / "tensorboard", out / ".resume", threads=1,
          protocol="react2025", resampling={"checkpoint": None})
    return out


def test_an_epoch_is_one_pass_over_the_clips_and_the_threshold_never_fires(toy: dict, tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        out = _train(toy, tmp_path / "never")
    assert "12 windows per epoch (react2025), 3 batches of up to 5" in caplog.text
    with (out / "train.tsv").open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [r["threshold"] for r in rows] == ["", ""]  # the 2025/2026 quirk: the thresholded loss never turns on
    with (_train(toy, tmp_path / "every", threshold_rule="every_epoch") / "train.tsv").open() as f:
        assert all(float(r["threshold"]) > 0 for r in csv.DictReader(f, delimiter="\t"))


@pytest.fixture(scope="module")
def checkpoint(toy: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(toy, tmp_path_factory.mktemp("mars-train")) / "checkpoints" / "after-002-epochs.pt"


def _generate(toy: dict, checkpoint: Path, out: Path, **settings) -> np.ndarray:
    generate_chunks(checkpoint, toy["emotions"], toy["video"], toy["audio"], {"device": "cpu", **settings}, 1, out,
                    threads=1)
    with h5py.File(out, "r") as f:
        return f["predictions"][()]


def test_generation_covers_each_clip_in_disjoint_chunks_and_mars_evaluate_reads_it(scored: dict, checkpoint: Path,
                                                                                   tmp_path: Path) -> None:
    out = tmp_path / "pred.h5"
    pred = _generate(scored, checkpoint, out)
    lengths = [len(scored["series"][c]) for c in scored["clips"]]
    with h5py.File(out, "r") as f:
        assert [c.decode() if isinstance(c, bytes) else c for c in f["clips"][()]] == scored["clips"]
        assert f["offsets"][()].tolist() == np.concatenate([[0], np.cumsum(lengths)]).tolist()
    assert pred.shape == (sum(lengths), 10, 25) and np.isfinite(pred).all()
    # disjoint chunks: changing the features of one clip's second chunk leaves its first chunk unchanged
    changed = {c: v.copy() for c, v in scored["video_features"].items()}
    key = "speaker/session1/stem3"  # 250 frames: 5 chunks
    changed[key][50:100, 2:] += 3.0
    shard = tmp_path / "changed.h5"
    write_shard(shard, changed, "toy_video", {})
    again = _generate({**scored, "video": [shard]}, checkpoint, tmp_path / "changed-pred.h5")
    lo = int(np.concatenate([[0], np.cumsum(lengths)])[scored["clips"].index(key)])
    assert np.array_equal(again[lo:lo + 50], pred[lo:lo + 50]) and np.array_equal(again[lo + 100:lo + 250],
                                                                                 pred[lo + 100:lo + 250])
    assert not np.array_equal(again[lo + 50:lo + 100], pred[lo + 50:lo + 100])
    metrics = mars_evaluate.evaluate_run(out, scored["emotions"], scored["targets"], tmp_path / "metrics.tsv")
    assert all(np.isfinite(metrics[m]) for m in mars_metrics.METRICS)


def test_eval_clip_batch_size_changes_the_numbers_and_no_other_batching_does(scored: dict, checkpoint: Path,
                                                                            tmp_path: Path) -> None:
    one = _generate(scored, checkpoint, tmp_path / "a.h5", eval_clip_batch_size=1, batch_clips=1)
    assert np.array_equal(one, _generate(scored, checkpoint, tmp_path / "b.h5", eval_clip_batch_size=1, batch_clips=7))
    sixteen = _generate(scored, checkpoint, tmp_path / "c.h5", eval_clip_batch_size=16)
    assert not np.allclose(one, sixteen)
    noise = torch.randn(2, 5, 3, 4, generator=torch.Generator().manual_seed(0))
    noise[0, 3, 0, 0] = 10.0
    scaled = micro_batch_noise(noise, 0.06, 2)  # calls: chunks [0, 1], [2, 3], [4]
    bound = 0.06 ** 0.5
    for j in range(2):
        for lo, hi in ((0, 2), (2, 4), (4, 5)):
            part = noise[j, lo:hi]
            assert torch.allclose(scaled[j, lo:hi], part * min(1.0, bound / float(part.abs().max())))
    assert np.array_equal(clip_chunks(np.ones((120, 2), np.float32), 50)[2], np.r_[np.ones((20, 2)), np.zeros((30, 2))])


def test_summary_figures_cope_with_variable_lengths(scored: dict, checkpoint: Path, tmp_path: Path) -> None:
    from regnn.metrics.summary import summarize

    pred = tmp_path / "pred.h5"
    _generate(scored, checkpoint, pred)
    run = tmp_path / "run.tsv"
    mars_evaluate.evaluate_run(pred, scored["emotions"], scored["targets"], run)
    base = tmp_path / "random.tsv"
    mars_evaluate.evaluate_baseline("random", scored["emotions"], scored["targets"], base)
    out = {n: tmp_path / n for n in ("t.tsv", "t.tex", "m.png", "r.png")}
    rows = summarize("test", {"regnn": [run]}, {"random": base}, out["t.tsv"], out["t.tex"], out["m.png"],
                     {"regnn": (pred, out["r.png"])}, scored["emotions"], protocol="react2025")
    assert [r["method"] for r in rows] == ["regnn", "random"] and "FRDvs" not in out["t.tsv"].read_text()
    assert out["r.png"].stat().st_size > 1000 and "MAE" in out["t.tex"].read_text()
    assert mars.load_cache(scored["emotions"]).samples == scored["clips"]


def test_config_yaml_switches_to_the_2025_baseline_with_data_protocol_alone() -> None:
    import yaml

    from regnn.settings import experiment_settings, resolve_generate_settings

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config/config.yaml").read_text())
    for name, expected in (("react2024", (128, 101, 10, "reference", 1, 96)), ("react2025", (64, None, 2, "never", 0, None))):
        configured = protocols.get(name).configured({**config, "data": {**config["data"], "protocol": name}})
        s = experiment_settings(configured, "regnn")["train"]
        generate = resolve_generate_settings(configured["generate"])
        assert (s["batch_size"], s["batches_per_epoch"], s["neighbours"], s["threshold_rule"],
                s["checkpoint_offset"], generate["epoch"]) == expected, name


def test_the_official_export_of_mars_predictions_scores_the_same(scored: dict, checkpoint: Path,
                                                                 tmp_path: Path) -> None:
    from regnn.generation import export_official

    pred = tmp_path / "pred.h5"
    _generate(scored, checkpoint, pred, samples=3)
    export_official(pred, tmp_path / "official" / "test")
    data = mars_evaluate.pipeline_set(scored["emotions"], scored["targets"])
    from_h5 = mars_evaluate.score(data, mars_evaluate.H5Predictions(pred, data.samples))
    from_folder = mars_evaluate.score(data, mars_evaluate.DirectoryPredictions(tmp_path / "official", "test",
                                                                              data.samples, 3))
    assert from_h5 == from_folder
