"""Training: windows and neighbour sampling, losses, schedule, checkpoints, determinism, resume, settings."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from model_toy import TINY_MODEL, toy_split, tiny_train

from regnn.data.windows import WindowSampler, clip_windows, load_split, window_starts
from regnn.losses import best_neighbour_mse, mid_loss, smoothness_loss
from regnn.settings import checkpoint_epochs, experiment_settings, resolve_train_settings
from regnn.checkpoints import load_checkpoint
from regnn.training import learning_rate, train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return toy_split(tmp_path_factory.mktemp("toy"))


def _run(toy: dict, out: Path, seed: int = 1, **kwargs) -> dict:
    train_s = kwargs.pop("train", tiny_train())
    train(toy["emotions"], toy["video"], toy["audio"], {"model": TINY_MODEL, "train": train_s}, seed,
          out / "checkpoints", out / "train.tsv", out / "tensorboard", out / ".resume", threads=1, **kwargs)
    return {"dir": out}


def test_window_starts_tile_the_clip():
    starts = window_starts(750, 50, 25)
    assert len(starts) == 29 and starts[-1] + 50 == 750
    with pytest.raises(ValueError, match="multiple of 30"):
        window_starts(750, 50, 30)
    series = np.arange(2 * 750 * 1, dtype=np.float32).reshape(2, 750, 1)
    windows = clip_windows(series, 50, 25)
    assert windows.shape == (2, 29, 50, 1) and windows[1, 3, 0, 0] == series[1, 75, 0]


def test_sampler_gathers_the_right_frames_and_neighbours(toy):
    data = load_split(toy["emotions"], toy["video"], toy["audio"])
    sampler = WindowSampler(data, 50, 25, max_neighbours=1)
    rng = np.random.default_rng(0)
    ids = np.arange(sampler.n_windows)
    batch = sampler.batch(ids, rng)
    assert batch.counts.tolist() == [1] * len(ids)  # capped at 1 of the 2 appropriate listeners
    pos, win = divmod(int(ids[40]), 29)
    start = 25 * win
    assert torch.equal(batch.video[40], torch.from_numpy(data.video[data.position_clip[pos], start:start + 50]))
    emotions = toy["arrays"]
    allowed = [emotions[toy["listener_index"][j], start:start + 50] for j in np.flatnonzero(toy["neighbours"][pos])]
    assert any(np.array_equal(batch.targets[40].numpy(), a) for a in allowed)
    full = WindowSampler(data, 50, 25, max_neighbours=10).batch(ids[:5], rng)
    assert full.counts.tolist() == [2] * 5 and full.targets.shape == (10, 50, 25)


def test_sampler_rejects_speaker_without_neighbours(toy, tmp_path):
    import h5py

    path = tmp_path / "emotions.h5"
    shutil.copy(toy["emotions"], path)
    with h5py.File(path, "r+") as f:
        f["neighbours"][3] = 0
    data = load_split(path, toy["video"], toy["audio"])
    with pytest.raises(ValueError, match=r"NoXI/003_toy/Expert_video/1 \(position 3\)"):
        WindowSampler(data, 50, 25, 10)


def test_losses_on_known_values():
    mu = torch.zeros(2, 1, 2)
    codes = torch.tensor([[[1.0, 1.0]], [[2.0, 2.0]], [[3.0, 3.0]]])
    counts = torch.tensor([2, 1])
    assert float(best_neighbour_mse(mu, codes, counts, None)) == pytest.approx((1 + 9) / 2)
    assert float(best_neighbour_mse(mu, codes, counts, 5.0)) == pytest.approx(9 / 2)  # speaker 0 counts 0
    assert float(mid_loss(codes, counts)) == pytest.approx((0.25 * 4) / 6)
    assert float(smoothness_loss(torch.tensor([[[0.0, 1.0, 3.0]]]))) == pytest.approx(1.5)


def test_schedule_and_checkpoint_epochs():
    paper = resolve_train_settings({})
    assert learning_rate(paper, 8) == pytest.approx(1e-4) and learning_rate(paper, 9) == pytest.approx(1e-5)
    warm = resolve_train_settings({"warmup_epochs": 2})
    assert learning_rate(warm, 0) == pytest.approx(1e-6) and learning_rate(warm, 2) == pytest.approx(1e-4)
    assert checkpoint_epochs({"epochs": 7, "checkpoint_every": 3, "checkpoint_offset": 0}) == [3, 6, 7]


def test_config_experiments_resolve_and_validate():
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    base = experiment_settings(config, "regnn")
    variant = experiment_settings(config, "regnn_w2v")
    assert base["model"]["perceptual"]["dim"] == 128 and base["train"]["lr"] == 1e-4
    assert variant["audio"] == "wav2vec2" and variant["model"]["gnn"]["width"] == 64
    assert variant["model"]["perceptual"]["heads"] == 8 and variant["train"]["smooth_weight"] == 0.1
    assert variant["model"]["perceptual"]["embed_dropout"] == 0.25  # untouched keys keep the defaults
    config["experiments"]["bad"] = {"video": "swin_fer", "audio": "vggish", "train": {"epochs": 3}}
    with pytest.raises(Exception, match="epochs"):
        validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))


def test_training_lowers_loss_and_checkpoints_on_schedule(toy, tmp_path):
    out = _run(toy, tmp_path / "run")["dir"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["after-002-epochs.pt", "after-004-epochs.pt"]
    assert not (out / ".resume").exists()  # cleaned up after success; the checkpoints keep their data
    with (out / "train.tsv").open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert rows[0]["threshold"] and float(rows[0]["threshold"]) == pytest.approx(float(rows[0]["best_mse"]) / 3)
    state = load_checkpoint(out / "checkpoints" / "after-002-epochs.pt")  # weights_only=True
    assert state["epoch"] == 2 and set(state) >= {"model", "optimizer", "settings", "dims"}
    assert state["settings"]["model"]["gnn"]["width"] == 16 and state["dims"] == {"video": 12, "audio": 6}
    assert any((out / "tensorboard").iterdir())


def test_same_seed_same_weights_and_kill_resume_equality(toy, tmp_path):
    _run(toy, tmp_path / "a")
    _run(toy, tmp_path / "b")
    final_a = load_checkpoint(tmp_path / "a/checkpoints/after-004-epochs.pt")
    final_b = load_checkpoint(tmp_path / "b/checkpoints/after-004-epochs.pt")
    for key, value in final_a["model"].items():
        assert torch.equal(value, final_b["model"][key]), key

    class Killed(Exception):
        pass

    def kill_after_3(epoch: int) -> None:
        if epoch == 3:
            raise Killed

    killed = tmp_path / "killed"
    with pytest.raises(Killed):
        _run(toy, killed, on_epoch_end=kill_after_3)
    assert load_checkpoint(killed / ".resume/state.pt")["epoch"] == 3
    # Snakemake deletes a failed job's declared outputs before rerunning it
    shutil.rmtree(killed / "checkpoints")
    shutil.rmtree(killed / "tensorboard")
    _run(toy, killed)
    resumed = load_checkpoint(killed / "checkpoints/after-004-epochs.pt")
    assert (killed / "checkpoints/after-002-epochs.pt").is_file()  # restored from the resume folder
    for key, value in final_a["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    with (killed / "train.tsv").open() as f:
        assert [r["epoch"] for r in csv.DictReader(f, delimiter="\t")] == ["1", "2", "3", "4"]

    other = _run(toy, tmp_path / "seed2", seed=2)["dir"]
    final_other = load_checkpoint(other / "checkpoints/after-004-epochs.pt")
    assert not all(torch.equal(v, final_other["model"][k]) for k, v in final_a["model"].items())


def test_resume_state_of_other_settings_is_discarded(toy, tmp_path):
    def stop(epoch: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(toy, tmp_path / "r", on_epoch_end=stop)
    _run(toy, tmp_path / "r", train=tiny_train(epochs=2))
    with (tmp_path / "r/train.tsv").open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [r["epoch"] for r in rows] == ["1", "2"] and rows[0]["lr"] == str(5e-3)


def test_non_finite_features_name_the_clip(toy, tmp_path):
    import h5py

    broken = tmp_path / "audio.h5"
    shutil.copy(toy["audio"][0], broken)
    with h5py.File(broken, "r+") as f:
        f["NoXI/004_toy/Novice_video/1"][7, 2] = np.nan
    with pytest.raises(ValueError, match="audio features of clip NoXI/004_toy/Novice_video/1"):
        load_split(toy["emotions"], toy["video"], [broken])


def test_prefetched_batches_equal_inline_batches(toy):
    from regnn.data.windows import prefetched_batches

    sampler = WindowSampler(load_split(toy["emotions"], toy["video"], toy["audio"]), 50, 25, 1)
    order = np.random.default_rng(3).permutation(sampler.n_windows)
    inline_rng, ahead_rng = np.random.default_rng(4), np.random.default_rng(4)
    inline = [sampler.batch(order[b * 10:(b + 1) * 10], inline_rng) for b in range(5)]
    ahead = list(prefetched_batches(sampler, order, 10, 5, ahead_rng, depth=3))
    for a, b in zip(inline, ahead, strict=True):
        assert torch.equal(a.video, b.video) and torch.equal(a.targets, b.targets)
