"""The SLURM profile on a real local cluster: a GPU rule gets a GPU, a CPU rule none, and a training
job killed mid-run is retried and resumes from its newest checkpoint.

One run of a small workflow (tests/slurm/workflow) through the test variant of profiles/slurm is
shared by the checks below; `sacct` is the record of what SLURM was asked for and what it ran. The
training process is killed with SIGKILL (as the OOM killer or a lost node would) rather than with
`scancel`: snakemake-executor-plugin-slurm 2.8.0 takes the resulting `CANCELLED by <uid>` state
for a running job and would wait forever.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from slurm.fixtures import (  # noqa: F401 (slurm_cluster is a fixture)
    USER_PROFILE,
    SlurmSession,
    build_test_profile,
    slurm_cluster,
    workflow_rules,
)

WORKFLOW = Path(__file__).resolve().parent / "slurm" / "workflow" / "Snakefile"
GPU_RULES = ("extract", "train", "generate", "evaluate", "baseline")  # in the profile's GPU partition
CPU_RULES = ("index_split", "summarize")
TRAIN_STEPS = 6
STEP_SECONDS = 0.5
KILL_AFTER_STEP = 2


@dataclass
class Run:
    workdir: Path
    returncode: int
    output: str
    killed_pid: int
    jobs: list[dict[str, str]]

    def rule_jobs(self, rule: str) -> list[dict[str, str]]:
        return [job for job in self.jobs if job["Rule"] == rule]


def _kill_training_once(workdir: Path, process: subprocess.Popen, timeout: float = 150) -> int:
    """SIGKILL the training process once it has checkpointed, as an OOM kill, node loss or
    preemption would; return the killed PID (0 if training never got that far)."""
    checkpoint = workdir / "checkpoints" / f"{KILL_AFTER_STEP}.ckpt"
    deadline = time.monotonic() + timeout
    while not checkpoint.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            return 0
        time.sleep(0.1)
    pid = int(_fields((workdir / "train-attempts.log").read_text().splitlines()[0])["pid"])
    os.kill(pid, signal.SIGKILL)
    return pid


@pytest.fixture(scope="module")
def run(slurm_cluster: SlurmSession, tmp_path_factory) -> Run:  # noqa: F811
    workdir = tmp_path_factory.mktemp("slurm-workflow")
    shutil.copy(WORKFLOW, workdir / "Snakefile")
    log = workdir.parent / f"{workdir.name}.log"
    settings = ["--config", f"train_steps={TRAIN_STEPS}", f"step_seconds={STEP_SECONDS}"]
    process = slurm_cluster.popen_profile(workdir, log, extra_args=settings, timeout=240)
    killed = _kill_training_once(workdir, process)
    process.wait()
    return Run(workdir, process.returncode, log.read_text(), killed,
               slurm_cluster.sacct_jobs(workdir))


def _fields(text: str) -> dict[str, str]:
    """Parse the `key=value ...` line a job of the small workflow wrote."""
    return dict(item.split("=", 1) for item in text.split())


def test_build_test_profile_shrinks_sizes_but_keeps_partitions(tmp_path: Path) -> None:
    user = yaml.safe_load(USER_PROFILE.read_text())
    test = yaml.safe_load((build_test_profile(tmp_path, rules=["index_split"]) / "config.yaml")
                          .read_text())
    sizes = test["default-resources"]
    assert test["executor"] == user["executor"] == "slurm"
    assert test["retries"] == user["retries"] >= 1
    assert sizes["slurm_account"] == "root"
    assert user["default-resources"]["slurm_partition"] != "gpu"
    for rule in GPU_RULES:
        assert user["set-resources"][rule]["slurm_partition"] == test["set-resources"][rule]["slurm_partition"] \
            == "gpu"
        assert test["set-resources"][rule]["mem_mb"] == sizes["mem_mb"]
    for rule in CPU_RULES:
        assert "slurm_partition" not in user["set-resources"].get(rule, {})
    assert test["set-resources"]["index_split"]["mem_mb"] == sizes["mem_mb"]
    # GPUs are the rules' decision (their stage's device setting), never the profile's
    for resources in (*user["set-resources"].values(), *test["set-resources"].values(), user["default-resources"]):
        assert "gpu" not in resources


def test_profile_names_rules_of_the_workflow() -> None:
    """A renamed rule would silently lose its GPU: every rule the profile sizes must exist."""
    profile = yaml.safe_load(USER_PROFILE.read_text())
    missing = set(profile["set-resources"]) - workflow_rules()
    assert not missing, f"profiles/slurm/config.yaml names rules the workflow lacks: {missing}"


@pytest.mark.slurm
def test_workflow_completes_through_the_profile(run: Run) -> None:
    assert run.returncode == 0, f"snakemake failed:\n{run.output[-6000:]}"
    assert (run.workdir / "model.txt").exists() and (run.workdir / "index.tsv").exists()
    assert {job["Rule"] for job in run.jobs} == {"train", "index_split"}


@pytest.mark.slurm
def test_gpu_rule_gets_a_gpu_and_cpu_rule_none(run: Run) -> None:
    train = run.rule_jobs("train")
    for job in train:
        assert job["Partition"] == "gpu", job
        assert "gres/gpu=1" in job["ReqTRES"].split(","), job
    assert "gres/gpu=1" in train[-1]["AllocTRES"].split(","), train[-1]
    index_split, = run.rule_jobs("index_split")
    assert index_split["Partition"] == "cpu", index_split
    assert "gres/gpu" not in index_split["ReqTRES"] + index_split["AllocTRES"], index_split
    # inside the jobs: one (fake) GPU visible, or none
    model = _fields((run.workdir / "model.txt").read_text())
    index = _fields((run.workdir / "index.tsv").read_text())
    assert (model["partition"], model["gpus"]) in {("gpu", "0"), ("gpu", "1")}
    assert (index["partition"], index["gpus"]) == ("cpu", "none")


@pytest.mark.slurm
def test_killed_training_is_retried_and_resumes_from_its_checkpoint(run: Run) -> None:
    assert run.killed_pid, f"training never reached step {KILL_AFTER_STEP}:\n{run.output[-6000:]}"
    train = run.rule_jobs("train")
    assert [job["State"] for job in train] == ["FAILED", "COMPLETED"], train
    first, second = map(_fields, (run.workdir / "train-attempts.log").read_text().splitlines())
    assert (first["start_step"], first["pid"], first["job"]) == ("0", str(run.killed_pid),
                                                                  train[0]["JobID"])
    assert int(second["start_step"]) >= KILL_AFTER_STEP and second["job"] == train[1]["JobID"]
    assert _fields((run.workdir / "model.txt").read_text())["resumed_from"] == second["start_step"]
    assert "Trying to restart job" in run.output
