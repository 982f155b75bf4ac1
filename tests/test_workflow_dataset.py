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
    """One policy for every rule: a job asks for a GPU unless its stage's device setting is cpu (so a laptop
    run with --resources gpu=0 can schedule a CPU config); rules without a device setting ask for none."""
    config = demo_config()
    run = snakemake(tmp_path / "cpu", config, "-n")
    assert run.returncode == 0, run.stdout[-3000:]
    gpus = planned_gpus(run)
    assert {"train", "generate", "extract", "evaluate", "baseline", "index_split", "summarize"} <= set(gpus)
    assert all(values == {0} for values in gpus.values()), gpus
    config["train"]["device"] = "auto"
    config["generate"]["device"] = "cuda"
    config["extractors"]["vggish"]["device"] = "auto"
    config["evaluate"]["device"] = "auto"
    run = snakemake(tmp_path / "gpu", config, "-n")
    assert run.returncode == 0, run.stdout[-3000:]
    gpus = planned_gpus(run)
    assert gpus["train"] == gpus["generate"] == gpus["evaluate"] == gpus["baseline"] == {1}, gpus
    assert gpus["extract"] == {0, 1} and gpus["index_split"] == gpus["summarize"] == {0}, gpus
