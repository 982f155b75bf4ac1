"""Run the real Snakefile on a config written by the test, in a private working directory."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def demo_config(**overrides: object) -> dict:
    """The demo config with a smaller synthetic dataset, updated with top-level overrides."""
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    config["demo_data"].update(sessions={"train": 1, "val": 1, "test": 1}, clips_per_session=2,
                               frame_size=32, audio_rate=8000)
    config.update(overrides)
    return config


def snakemake(workdir: Path, config: dict, *args: str, timeout: int = 600,
              snakefile: Path = REPO / "Snakefile") -> subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    return subprocess.run(
        [str(SNAKEMAKE), "-s", str(snakefile), "-d", str(workdir), "--configfile", str(configfile),
         "--cores", "2", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
    )


def private_checkout(parent: Path) -> Path:
    """A copy of the workflow and its source tree for a test to edit (never the real tree). Modification
    times are kept, so the copy's unchanged files look unchanged to Snakemake."""
    checkout = parent / "checkout"
    checkout.mkdir(parents=True)
    shutil.copy2(REPO / "Snakefile", checkout / "Snakefile")
    for folder in ("workflow", "src", "config", "envs", "profiles", ".test"):
        shutil.copytree(REPO / folder, checkout / folder, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.so", "results", ".snakemake"))
    return checkout


def planned_reasons(result: subprocess.CompletedProcess) -> dict[str, list[str]]:
    """Rule -> the `reason:` lines of its planned jobs, from a dry run's per-job blocks."""
    reasons: dict[str, list[str]] = {}
    rule = None
    for line in result.stdout.splitlines():
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            rule = line.split()[1].rstrip(":")
        elif line.strip().startswith("reason:") and rule:
            reasons.setdefault(rule, []).append(line.split(":", 1)[1].strip())
    return reasons


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> job count from a dry run's 'Job stats' table (empty when nothing is planned)."""
    counts: dict[str, int] = {}
    lines = result.stdout.splitlines()
    if "Job stats:" not in lines:
        return counts
    for line in lines[lines.index("Job stats:") + 3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def planned(result: subprocess.CompletedProcess) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job a dry run (`-n`) plans, from its per-job blocks."""
    jobs: list[tuple[str, dict[str, str]]] = []
    for line in result.stdout.splitlines():
        if line.startswith("rule ") and line.endswith(":") or line.startswith("localrule "):
            jobs.append((line.split()[1].rstrip(":"), {}))
        elif line.strip().startswith("wildcards:") and jobs:
            jobs[-1][1].update(kv.split("=", 1) for kv in line.split(":", 1)[1].strip().split(", "))
    return jobs


def planned_gpus(result: subprocess.CompletedProcess) -> dict[str, set[int]]:
    """Rule -> the `gpu` resource values its planned jobs ask for, from a dry run's per-job blocks."""
    gpus: dict[str, set[int]] = {}
    rule = None
    for line in result.stdout.splitlines():
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            rule = line.split()[1].rstrip(":")
        elif line.strip().startswith("resources:") and rule:
            values = dict(kv.split("=", 1) for kv in line.split(":", 1)[1].strip().split(", "))
            gpus.setdefault(rule, set()).add(int(values.get("gpu", 0)))
    return gpus


def mars_demo_config(**overrides: object) -> dict:
    """The MARS demo config (config/demo_mars.yaml) on a smaller synthetic MARS set, updated with top-level
    overrides: a few seconds per stage."""
    config = yaml.safe_load((REPO / "config" / "demo_mars.yaml").read_text())
    config["demo_data"].update(sessions={"train": 2, "test": 1}, stems_per_session=[2, 3],
                               frames=[58, 120])
    config["train"].update(epochs=2, checkpoint_every=1)
    config["evaluate"]["baselines"]["names"] = ["ground_truth", "random"]
    config.update(overrides)
    return config
