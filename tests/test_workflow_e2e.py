"""The whole demo DAG under Snakemake: it runs end to end, then reruns only what a change invalidates."""

from __future__ import annotations

import copy
import csv
import math
from pathlib import Path

import pytest

from tests.workflow_helpers import demo_config, planned, planned_jobs, snakemake

pytestmark = pytest.mark.slow


def _tiny_config() -> dict:
    config = demo_config(seeds=[1])
    config["train"].update(epochs=2, batches_per_epoch=3, checkpoint_every=1, checkpoint_offset=0)
    return config


@pytest.fixture(scope="module")
def finished_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    workdir = tmp_path_factory.mktemp("demo")
    config = _tiny_config()
    run = snakemake(workdir, config, timeout=1200)
    assert run.returncode == 0, run.stdout[-5000:]
    return workdir, config


def test_metrics_table_has_every_method(finished_demo: tuple[Path, dict]) -> None:
    workdir, config = finished_demo
    for split in config["splits"]["evaluate"]:
        with (workdir / "results/metrics" / f"{split}.tsv").open() as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        assert {r["method"] for r in rows} == {*config["experiments"], "ground_truth", "random", "mime"}
        metrics = ("FRC", "FRD", "S-MSE", "FRVar", "FRDvs", "TLCC")
        assert set(metrics) <= set(rows[0])
        assert all(math.isfinite(float(r[m])) for r in rows for m in metrics)
        assert (workdir / "results/metrics" / f"{split}.tex").is_file()


def test_unchanged_config_plans_nothing(finished_demo: tuple[Path, dict]) -> None:
    workdir, config = finished_demo
    run = snakemake(workdir, config, "-n")
    assert run.returncode == 0 and planned_jobs(run) == {}, run.stdout[-3000:]


def test_audio_extractor_change_reruns_its_chain_and_no_video_job(finished_demo: tuple[Path, dict]) -> None:
    workdir, config = finished_demo
    changed = copy.deepcopy(config)
    changed["extractors"]["vggish"]["seed"] = 1
    run = snakemake(workdir, changed, "-n")
    assert run.returncode == 0, run.stdout[-3000:]
    jobs = planned(run)
    extracted = {w["extractor"] for rule, w in jobs if rule == "extract"}
    assert extracted == {"vggish"}
    users = {e for e, s in config["experiments"].items() if s["audio"] == "vggish"}
    assert {w["experiment"] for rule, w in jobs if rule in ("train", "generate", "evaluate")} == users
    assert {rule for rule, _ in jobs} <= {"extract", "train", "generate", "evaluate", "summarize", "all"}


def test_training_change_reruns_train_generate_evaluate_summarize_only(
        finished_demo: tuple[Path, dict]) -> None:
    workdir, config = finished_demo
    changed = copy.deepcopy(config)
    changed["train"]["lr"] = config["train"]["lr"] / 2
    run = snakemake(workdir, changed, "-n")
    assert run.returncode == 0, run.stdout[-3000:]
    counts = planned_jobs(run)
    assert set(counts) == {"train", "generate", "evaluate", "summarize", "all"}, counts
    experiments = len(config["experiments"])
    assert counts["train"] == experiments
    assert counts["generate"] == counts["evaluate"] == experiments * len(config["splits"]["evaluate"])
