"""Planning cost on a full-size REACT layout: how long `snakemake -n` takes and how many jobs it plans.

Writes a placeholder REACT 2024 layout (split CSVs with the real row counts, neighbour matrices, and empty
media/emotion files, ~6,000 clips) and the weight files config/config.yaml names, then times a dry run of
the whole DAG (every evaluated split's metrics) with the paper's config. Targets: <= 300 jobs, <= 5 s.

    .venv/bin/python benchmarks/dry_run.py [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
# REACT 2024: 1,593 train rows, 806 test rows (2N = 1,612); val makes up the 5,919 clips.
ROWS = {"train": 1593, "val": 560, "test": 806}


def placeholder_layout(root: Path) -> int:
    clips = 0
    for split, rows in ROWS.items():
        lines = [",speaker_path,listener_path"]
        for i in range(rows):
            session = f"{i // 8:03d}_2016-03-25_Paris"
            pair = [f"NoXI/{session}/Expert_video/{i % 8 + 1}", f"NoXI/{session}/Novice_video/{i % 8 + 1}"]
            lines.append(f"{i},{pair[0]},{pair[1]}")
            for key, person in zip(pair, ("P1", "P2")):
                for folder, name in (("Video_files", f"{key}.mp4"), ("Audio_files", f"{key}.wav"),
                                     ("Emotion", f"NoXI/{session}/{person}/{i % 8 + 1}.csv")):
                    path = root / split / folder / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.touch()
                clips += 1
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
        np.save(root / f"neighbour_emotion_{split}.npy", np.eye(2 * rows))
    return clips


def weight_paths(node: object) -> list[str]:
    """Every absolute path in the config (weights), so the dry run finds them."""
    if isinstance(node, dict):
        return [p for v in node.values() for p in weight_paths(v)]
    if isinstance(node, list):
        return [p for v in node for p in weight_paths(v)]
    return [node] if isinstance(node, str) and node.startswith("/") else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="regnn-dry-run-"))
    root = workdir / "react"
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["data"]["root"] = str(root)
    # Weight files named in the config are rule inputs: stand them in under the work dir.
    text = yaml.safe_dump(config)
    for path in weight_paths(config):
        if path != str(root):
            stand_in = workdir / "weights" / path.lstrip("/")
            stand_in.parent.mkdir(parents=True, exist_ok=True)
            stand_in.touch()
            text = text.replace(path, str(stand_in))
    configfile = workdir / "config.yaml"
    configfile.write_text(text)
    clips = placeholder_layout(root)
    command = [str(Path(sys.executable).with_name("snakemake")), "all", "-s",
               str(REPO / "Snakefile"), "-d", str(workdir), "--configfile", str(configfile), "-n",
               "--quiet", "rules"]
    # Warm the filesystem and the imports. Python writes its bytecode caches on that first run, as on any
    # user's machine, even where the environment sets PYTHONDONTWRITEBYTECODE (every run would otherwise
    # recompile Snakemake's ~1,000 modules, seconds of CPU that no user sees).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(command, check=True, capture_output=True, env=env)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    jobs = int(re.search(r"^total\s+(\d+)$", run.stdout, flags=re.M).group(1))
    print(f"placeholder REACT layout: {clips} clips under {root}")
    print(f"dry run of the whole DAG: {jobs} jobs planned in {seconds:.2f} s wall, {cpu:.2f} s CPU "
          "(targets: <= 300 jobs, <= 5 s; on a shared machine the CPU time is the steadier figure)")
    print(run.stdout[run.stdout.rindex("Job stats:"):run.stdout.index("Reasons:")])


if __name__ == "__main__":
    main()
