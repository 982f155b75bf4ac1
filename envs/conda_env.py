"""Write envs/regnn.yaml, the conda environment of every rule (`--sdm conda`), from requirements.lock.

The environment's pip part is the lock's exact pins, written out: Snakemake copies an environment file
into .snakemake/conda/ before conda reads it, so a relative `-r ../requirements.lock` would point nowhere,
and installing the project itself (`-e ..`) ties the environment to one checkout. The jobs import regnn
from the workflow's own source tree instead (workflow/scripts/_source_tree.py), the code their params
digest. `make lock` runs this; `--check` fails when the file is out of date with the lock.

    python envs/conda_env.py [--check]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = REPO / "envs" / "regnn.yaml"
LOCK = REPO / "requirements.lock"
PIN = re.compile(r"^([A-Za-z0-9._-]+==[^\s;#]+)\s*$")


def pins(lock: Path = LOCK) -> list[str]:
    """The `name==version` lines of a uv/pip-compile lock file, in its order."""
    found = [m.group(1) for line in lock.read_text().splitlines() if (m := PIN.match(line))]
    other = [line for line in lock.read_text().splitlines() if line.strip() and not line.startswith(" ")
             and not line.startswith("#") and not PIN.match(line)]
    if other:
        raise SystemExit(f"{lock}: lines that are not exact pins: {other}")
    return found


def environment(python: str = f"{sys.version_info.major}.{sys.version_info.minor}") -> str:
    lines = [
        "# The environment every rule runs in, for clusters that use `--sdm conda`. Generated from",
        "# requirements.lock by `make lock` (envs/conda_env.py): do not edit. Third-party packages only: the",
        "# jobs import regnn from the workflow's own source tree (workflow/scripts/_source_tree.py).",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        f"  - python={python}",
        "  - pip",
        "  - pip:",
        *(f"      - {pin}" for pin in pins()),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if envs/regnn.yaml differs from the lock")
    args = parser.parse_args()
    text = environment()
    if args.check:
        if ENV.read_text() != text:
            raise SystemExit(f"{ENV} is out of date with {LOCK}: run `make lock`")
        return
    ENV.write_text(text)


if __name__ == "__main__":
    main()
