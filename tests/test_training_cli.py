"""`regnn train` / `regnn generate` on the standard result layout, as a user without Snakemake runs them."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import yaml
from model_toy import TINY_MODEL, toy_split, tiny_train

from regnn.cli import main


def test_cli_train_then_generate_with_official_export(tmp_path: Path):
    toy = toy_split(tmp_path / "toy")
    results = tmp_path / "results"
    (results / "dataset/train").mkdir(parents=True)
    shutil.copy(toy["emotions"], results / "dataset/train/emotions.h5")
    for name, shards in (("vid", toy["video"]), ("aud", toy["audio"])):
        for k, shard in enumerate(shards):
            target = results / "features" / name / "train" / f"shard-{k}.h5"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(shard, target)
    config = {
        "splits": {"train": "train", "evaluate": ["train"]},
        "extractors": {"vid": {"shards": 2}, "aud": {"shards": 1}},
        "experiments": {"toy": {"video": "vid", "audio": "aud", "train": {"lr": 1e-3}}},
        "model": TINY_MODEL,
        "train": tiny_train(epochs=2, batches_per_epoch=2, checkpoint_every=1),
        "generate": {"samples": 2, "device": "cpu"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    run = results / "experiments/toy/seed-3"
    assert main(["train", "--config", str(path), "--experiment", "toy", "--seed", "3", "--results", str(results)]) == 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["after-001-epochs.pt", "after-002-epochs.pt"]
    assert main(["generate", "--config", str(path), "--experiment", "toy", "--seed", "3", "--split", "train",
                 "--epoch", "1", "--official", "--results", str(results)]) == 0
    with h5py.File(run / "predictions/train.h5") as f:
        assert f["predictions"].shape == (12, 2, 750, 25) and f.attrs["checkpoint_epoch"] == 1
    assert (run / "official/train" / toy["clips"][0] / "result-1.pth").is_file()
