"""The whole DAG on a tiny synthetic MARS set (data.protocol: react2025): features -> train -> generate ->
evaluate -> summary, then what a change reruns, and a MARS training job through the SLURM profile on the
real local cluster (the whole REACT 2024 DAG through the profile is test_slurm_demo.py)."""

from __future__ import annotations

import copy
import csv
import math
from pathlib import Path

import pytest
import yaml

from regnn.metrics.mars import METRICS
from slurm.fixtures import SlurmSession, slurm_cluster  # noqa: F401 (slurm_cluster is a fixture)
from tests.workflow_helpers import REPO, mars_demo_config, planned, planned_jobs, snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    workdir = tmp_path_factory.mktemp("mars-demo")
    config = mars_demo_config()
    run = snakemake(workdir, config, timeout=1800)
    assert run.returncode == 0, run.stdout[-5000:]
    return workdir, config


def test_the_mars_dag_ends_in_the_metrics_table(finished: tuple[Path, dict]) -> None:
    workdir, config = finished
    with (workdir / "results/metrics/test.tsv").open() as f:
        rows = {r["method"]: r for r in csv.DictReader(f, delimiter="\t")}
    assert set(rows) == {*config["experiments"], *config["evaluate"]["baselines"]["names"]}
    assert all(math.isfinite(float(r[m])) for r in rows.values() for m in METRICS)
    assert "FRDvs" not in rows["regnn"] and rows["regnn"]["resampling"] == "interpolate"
    assert float(rows["ground_truth"]["FRD"]) == 0.0
    assert (workdir / "results/metrics/figures/test-reactions-regnn.png").is_file()
    assert not list(workdir.glob("results/experiments/*/seed-*/reactions"))  # render is REACT 2024's
    train_log = (workdir / "results/logs/train/regnn/seed-1.log").read_text()
    assert "windows per epoch (react2025)" in train_log and "threshold is never set" in train_log


def test_unchanged_config_plans_nothing(finished: tuple[Path, dict]) -> None:
    workdir, config = finished
    run = snakemake(workdir, config, "-n")
    assert run.returncode == 0 and planned_jobs(run) == {}, run.stdout[-3000:]


def test_an_extractor_change_reruns_its_shards_and_dependants_only(finished: tuple[Path, dict]) -> None:
    workdir, config = finished
    changed = copy.deepcopy(config)
    changed["extractors"]["wav2vec2"]["seed"] = 1
    run = snakemake(workdir, changed, "-n")
    assert run.returncode == 0, run.stdout[-3000:]
    jobs = planned(run)
    assert {w["extractor"] for rule, w in jobs if rule == "extract"} == {"wav2vec2"}
    assert {rule for rule, _ in jobs} == {"extract", "train", "generate", "evaluate", "summarize",
                                          "training_curves", "all"}, jobs
    splits = {config["splits"]["train"], *config["splits"]["evaluate"]}
    assert {w["split"] for rule, w in jobs if rule == "extract"} == splits


@pytest.mark.slurm
def test_a_mars_training_job_through_the_slurm_profile(finished: tuple[Path, dict],
                                                       slurm_cluster: SlurmSession) -> None:  # noqa: F811
    """Last in this module: it retrains in the finished workdir. The train job reaches SLURM in the GPU
    partition with one GPU (device auto) and trains on MARS windows."""
    workdir, config = finished
    changed = copy.deepcopy(config)
    changed["train"]["device"] = "auto"
    configfile = workdir / "slurm-config.yaml"
    configfile.write_text(yaml.safe_dump(changed, sort_keys=False))
    run = slurm_cluster.run_profile(workdir, targets=["results/experiments/regnn/seed-1/train.tsv"],
                                    extra_args=["-s", str(REPO / "Snakefile"), "--configfile", str(configfile)],
                                    timeout=600)
    assert run.returncode == 0, run.stdout[-6000:]
    jobs = slurm_cluster.sacct_jobs(workdir)
    assert [job["Rule"] for job in jobs] == ["train"], jobs
    assert jobs[0]["Partition"] == "gpu" and jobs[0]["State"] == "COMPLETED", jobs
    assert "gres/gpu=1" in jobs[0]["ReqTRES"].split(","), jobs
    assert "windows per epoch (react2025)" in (workdir / "results/logs/train/regnn/seed-1.log").read_text()
