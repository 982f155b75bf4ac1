"""A MARS (react2025) model-stage job through the SLURM profile on the real local cluster: the train job of
the tiny MARS config reaches SLURM in the GPU partition with one GPU and trains on MARS windows. (The whole
REACT 2024 DAG through the profile is test_slurm_demo.py; the upstream jobs here run locally, to keep it short.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slurm.fixtures import SlurmSession, slurm_cluster  # noqa: F401 (slurm_cluster is a fixture)
from tests.workflow_helpers import REPO, mars_demo_config, snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def test_mars_training_job_through_the_profile(slurm_cluster: SlurmSession, tmp_path: Path) -> None:  # noqa: F811
    workdir = tmp_path.resolve()
    config = mars_demo_config()
    config["train"]["device"] = "auto"  # asks for a GPU
    shards = [f"results/features/{e}/train/shard-0.h5" for e in ("swin_fer", "wav2vec2")]
    local = snakemake(workdir, config, *shards)  # writes workdir/config.yaml
    assert local.returncode == 0, local.stdout[-3000:]
    run = slurm_cluster.run_profile(workdir, targets=["results/experiments/regnn/seed-1/train.tsv"],
                                    extra_args=["-s", str(REPO / "Snakefile"), "--configfile",
                                                str(workdir / "config.yaml")], timeout=600)
    assert run.returncode == 0, run.stdout[-6000:]
    jobs = slurm_cluster.sacct_jobs(workdir)
    assert {job["Rule"] for job in jobs} == {"train"}, jobs
    train, = jobs
    assert train["Partition"] == "gpu" and train["State"] == "COMPLETED", train
    assert "gres/gpu=1" in train["ReqTRES"].split(","), train
    log = (workdir / "results/logs/train/regnn/seed-1.log").read_text()
    assert "windows per epoch (react2025)" in log
    assert yaml.safe_load((workdir / "config.yaml").read_text())["data"]["protocol"] == "react2025"
