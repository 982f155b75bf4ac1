"""Snakemake runs the dataset stage on the demo config; the config schema rejects bad settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from regnn.data.index import load_emotions
from tests.workflow_helpers import demo_config, planned_gpus, planned_jobs, snakemake

TARGETS = [f"results/dataset/{s}/index.tsv" for s in ("train", "val", "test")]


def test_dataset_stage_runs_and_then_plans_nothing(tmp_path: Path) -> None:
    config = demo_config()
    run = snakemake(tmp_path, config, *TARGETS)
    assert run.returncode == 0, run.stdout[-3000:]
    journal = (tmp_path / "results/dataset/train/cleanup.tsv").read_text().splitlines()
    assert journal[0] == "action\tsource\ttarget" and len(journal) > 1
    assert not [p for p in (tmp_path / "results/demo-data").rglob("*.pth") if p.parent.name == p.stem]
    cache = load_emotions(tmp_path / "results/dataset/test/emotions.h5")
    assert cache.emotions.shape == (8, 750, 25) and np.isfinite(cache.emotions).all()
    again = snakemake(tmp_path, config, "-n", *TARGETS)
    assert again.returncode == 0 and planned_jobs(again) == {}, again.stdout[-2000:]


def test_unknown_key_and_wrong_type_name_the_key(tmp_path: Path) -> None:
    config = demo_config()
    config["data"]["rooot"] = "typo"
    run = snakemake(tmp_path / "a", config, "-n")
    assert run.returncode != 0 and "rooot" in run.stdout
    config = demo_config(seeds="one")
    run = snakemake(tmp_path / "b", config, "-n")
    assert run.returncode != 0 and "seeds" in run.stdout and "'one' is not of type 'array'" in run.stdout


def test_missing_data_root_is_a_clear_message(tmp_path: Path) -> None:
    config = demo_config()
    del config["demo_data"]
    config["data"]["root"] = str(tmp_path / "no-such-react")
    run = snakemake(tmp_path, config, "-n")
    assert run.returncode != 0
    assert "does not exist. Set data.root" in run.stdout and "Traceback" not in run.stdout


def test_gpu_requests_follow_the_device_settings(tmp_path: Path) -> None:
    """Jobs pinned to the CPU ask for no GPU (a laptop run with --resources gpu=0 can schedule them)."""
    config = demo_config()
    run = snakemake(tmp_path / "cpu", config, "-n")
    assert run.returncode == 0, run.stdout[-3000:]
    gpus = planned_gpus(run)
    assert gpus["train"] == gpus["generate"] == gpus["extract"] == gpus["evaluate"] == {0}, gpus
    config["train"]["device"] = "auto"
    config["generate"]["device"] = "cuda"
    config["extractors"]["vggish"]["gpus"] = 1
    run = snakemake(tmp_path / "gpu", config, "-n")
    assert run.returncode == 0, run.stdout[-3000:]
    gpus = planned_gpus(run)
    assert gpus["train"] == gpus["generate"] == {1} and gpus["extract"] == {0, 1}, gpus
