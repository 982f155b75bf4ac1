"""Pytest fixture and helpers for running workflows through the SLURM profile on a local cluster.

`slurm_cluster` (session-scoped) starts one `LocalSlurm` for the whole test session and yields a
`SlurmSession`: `run_profile(workdir, targets, extra_args)` runs Snakemake in `workdir` with the
test variant of `profiles/slurm` and `sacct_jobs(workdir)` lists what SLURM ran. Import the fixture
into a test module (or list this module in `pytest_plugins` of the top-level conftest.py).

The project's demo DAG runs the same way, e.g.
`run_profile(REPO, ["results/metrics/test.tsv"], ["--configfile", "config/demo.yaml",
"--directory", str(tmp)])` and then `sacct_jobs(tmp)`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import pytest
import yaml

from slurm.cluster import LocalSlurm, missing_programs

REPO = Path(__file__).resolve().parents[2]
USER_PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
TEST_OVERLAY = Path(__file__).resolve().parent / "profile" / "config.yaml"


def workflow_rules(repo: Path = REPO) -> set[str]:
    """Names of the rules the project's workflow defines (read from its source, without Snakemake)."""
    sources = [repo / "Snakefile", *sorted((repo / "workflow" / "rules").glob("*.smk"))]
    pattern = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:", re.MULTILINE)
    return {name for path in sources if path.exists() for name in pattern.findall(path.read_text())}


def build_test_profile(dest: Path, base: Path = USER_PROFILE, overlay: Path = TEST_OVERLAY,
                       rules: Iterable[str] = ()) -> Path:
    """Write the user's profile with the test overlay laid over it; return the profile directory.

    Top-level settings and `default-resources` entries of the overlay win, and its
    `default-resources` also go into every rule of `set-resources` and into an entry for each rule
    named in `rules` (a rule's own `resources:` may ask for more memory than the test node has). So
    sizes meant for a real cluster shrink to the test node while GPU requests and partitions stay as
    the user's profile has them. Built at run time (not copied) so the tests follow the user's
    profile as it is edited.
    """
    profile = yaml.safe_load(base.read_text())
    test = yaml.safe_load(overlay.read_text())
    sizes = test.pop("default-resources", {})
    profile.update(test)
    profile["default-resources"] = {**profile.get("default-resources", {}), **sizes}
    per_rule = profile.get("set-resources", {})
    profile["set-resources"] = {
        rule: {**per_rule.get(rule, {}), **sizes} for rule in sorted({*per_rule, *rules})
    }
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return dest


class SlurmSession:
    """A running local cluster plus the test profile built for it."""

    def __init__(self, cluster: LocalSlurm, profile: Path):
        self.cluster = cluster
        self.profile = profile

    def command(self, targets: Sequence[str] = (), extra_args: Sequence[str] = (),
                timeout: int = 300) -> list[str]:
        """The Snakemake command line; `timeout` sends SIGINT (Snakemake ignores SIGTERM while it
        waits for cluster jobs; on SIGINT it cancels them) and kills 20 s later."""
        return ["timeout", "-s", "INT", "-k", "20", str(timeout),
                sys.executable, "-m", "snakemake", "--profile", str(self.profile),
                *targets, *extra_args]

    def popen_profile(self, workdir: Path, log: Path, targets: Sequence[str] = (),
                      extra_args: Sequence[str] = (), timeout: int = 300) -> subprocess.Popen:
        """Start Snakemake through the profile in `workdir` without waiting; its stdout and stderr
        go to `log` (a file, so a long output cannot block it while the caller does other work)."""
        with open(log, "w") as out:
            return subprocess.Popen(self.command(targets, extra_args, timeout), cwd=workdir,
                                    env=self.cluster.env, stdout=out, stderr=subprocess.STDOUT,
                                    text=True)

    def run_profile(self, workdir: Path, targets: Sequence[str] = (),
                    extra_args: Sequence[str] = (), timeout: int = 300
                    ) -> subprocess.CompletedProcess:
        """Run Snakemake through the profile in `workdir` to the end; output in `.stdout`."""
        return subprocess.run(self.command(targets, extra_args, timeout), cwd=workdir,
                              env=self.cluster.env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)

    def sacct_jobs(self, workdir: Path | None = None) -> list[dict[str, str]]:
        """Jobs as `sacct` records them (see `LocalSlurm.sacct_jobs`)."""
        return self.cluster.sacct_jobs(workdir)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmSession]:
    """A single-node SLURM cluster with 2 fake GPUs for the session; skips without SLURM or root."""
    missing = missing_programs()
    if missing:
        pytest.skip(f"SLURM is not installed (missing {', '.join(missing)}); "
                    "run .ci/install-slurm.sh")
    if os.geteuid() != 0:
        pytest.skip("the local SLURM cluster needs root (slurmd starts jobs, mknod makes fake GPUs)")
    with LocalSlurm() as cluster, tempfile.TemporaryDirectory(prefix="regnn-profile-") as tmp:
        yield SlurmSession(cluster, build_test_profile(Path(tmp), rules=workflow_rules()))
