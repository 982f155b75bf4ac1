"""The demo DAG itself through the SLURM profile on a real local cluster.

Rules that can use a GPU must reach SLURM in the GPU partition, asking for a GPU exactly when their
device setting is not cpu (here training only), and every other rule in the CPU partition without one; the training job is SIGKILLed after its first checkpoint (as a preemption, OOM kill or lost
node would) and must be retried and resume from that checkpoint. (A whole job failing and being resubmitted
is checked on a small workflow in test_slurm.py.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from slurm.fixtures import SlurmSession, slurm_cluster  # noqa: F401 (slurm_cluster is a fixture)
from tests.workflow_helpers import REPO, demo_config

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
GPU_RULES = {"extract", "train", "generate", "evaluate", "baseline"}  # in the profile's GPU partition


def _config() -> dict:
    config = demo_config(seeds=[1])
    config["experiments"] = {"regnn": config["experiments"]["regnn"]}
    config["splits"]["evaluate"] = ["test"]
    config["train"].update(epochs=3, batches_per_epoch=12, checkpoint_every=1, checkpoint_offset=0, device="auto")  # asks for a GPU
    return config


def _training_pid(workdir: Path) -> int | None:
    """The PID of the Python process running the train rule's script in `workdir`, if any."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if ".train.py" in cmdline and Path(cwd) == workdir:
            return int(proc.name)
    return None


def _kill_training_after_first_checkpoint(workdir: Path, run: subprocess.Popen) -> int:
    """SIGKILL the training script and its process group, as an OOM kill or a lost node would; waits as long
    as the run goes on (on a loaded machine the jobs before training took over 10 minutes)."""
    state = workdir / "results/experiments/regnn/seed-1/.resume/state.pt"
    while run.poll() is None:
        if state.exists() and (pid := _training_pid(workdir)):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
            return pid
        time.sleep(0.2)
    return 0


def test_demo_dag_through_the_profile(slurm_cluster: SlurmSession, tmp_path: Path) -> None:  # noqa: F811
    workdir = tmp_path.resolve()
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(_config(), sort_keys=False))
    log = workdir / "snakemake.log"
    process = slurm_cluster.popen_profile(
        workdir, log, targets=["results/metrics/test.tsv"],
        extra_args=["-s", str(REPO / "Snakefile"), "--configfile", str(configfile)], timeout=1500)
    killed = _kill_training_after_first_checkpoint(workdir, process)
    process.wait()
    output = log.read_text()
    assert process.returncode == 0, output[-6000:]
    assert killed, "training finished before it could be killed"
    assert (workdir / "results/metrics/test.tsv").is_file()

    jobs = slurm_cluster.sacct_jobs(workdir)
    assert GPU_RULES <= {job["Rule"] for job in jobs}
    for job in jobs:
        assert job["Partition"] == ("gpu" if job["Rule"] in GPU_RULES else "cpu"), job
        if job["Rule"] == "train":
            assert "gres/gpu=1" in job["ReqTRES"].split(","), job
        else:
            assert "gres/gpu" not in job["ReqTRES"] + job["AllocTRES"], job
    # The retry happens inside the job's allocation (its Snakemake restarts the rule) or as a new job.
    assert [job["State"] for job in jobs if job["Rule"] == "train"][-1] == "COMPLETED"
    train_log = (workdir / "results/logs/train/regnn/seed-1.log").read_text()
    assert "resuming from" in train_log and "after epoch 1" in train_log
