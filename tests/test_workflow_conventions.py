"""The Snakemake ecosystem's conventions: formatting and lint, the catalog layout, `.test/`, module deployment,
and a conda environment that resolves against the lock."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.workflow_helpers import (REPO, SNAKEMAKE, demo_config, planned_jobs, private_checkout,
                                    snakemake)

BIN = Path(sys.executable).parent
RULE_FILES = sorted((REPO / "workflow" / "rules").glob("*.smk"))


def _run(*command: str | Path, cwd: Path = REPO, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)


def test_snakefmt_check_passes() -> None:
    run = _run(BIN / "snakefmt", "--check", "--compact-diff", "Snakefile", "workflow/")
    assert run.returncode == 0, run.stdout[-3000:]


def test_snakemake_lint_passes(tmp_path: Path) -> None:
    run = snakemake(tmp_path, demo_config(), "--lint")
    assert run.returncode == 0 and "Congratulations" in run.stdout, run.stdout[-3000:]


def test_every_rule_with_a_script_names_that_scripts_code_in_its_params() -> None:
    """A rule without its code digest would silently keep results made by old code."""
    for path in RULE_FILES:
        text = path.read_text()
        for block in re.split(r"\n(?=rule |checkpoint )", text)[1:]:
            name = block.split(":", 1)[0].split()[1]
            script = re.search(r'script:\s*\n\s*"\.\./scripts/([\w.]+)"', block)
            assert script, f"{path.name}: rule {name} runs no script (the code trigger is off: see profiles/default)"
            named = {m.group(1) for m in re.finditer(rf'^(\w+) = code\("{re.escape(script.group(1))}"', text, re.M)}
            unpacked = {m.group(1) for m in re.finditer(r"^\s+\*(\w+)", block, re.M)}
            assert f'*code("{script.group(1)}"' in block or named & unpacked, \
                f"{path.name}: rule {name} lacks *code(\"{script.group(1)}\") in its params"
            # a script that imports code by name must name it too (no digest can follow importlib)
            if "protocols.get(" in (REPO / "workflow/scripts" / script.group(1)).read_text():
                assert "PROTOCOL_MODULE" in block, f"{path.name}: rule {name} calls the protocol but does not name it"


def test_both_snakefiles_plan_the_same_workflow(tmp_path: Path) -> None:
    config = demo_config()
    top = snakemake(tmp_path / "top", config, "-n")
    inner = snakemake(tmp_path / "inner", config, "-n", snakefile=REPO / "workflow" / "Snakefile")
    assert top.returncode == 0 and inner.returncode == 0, (top.stdout[-2000:], inner.stdout[-2000:])
    assert planned_jobs(top) == planned_jobs(inner) and planned_jobs(top)["summarize"] == 2


def test_catalog_files_and_the_dot_test_convention(tmp_path: Path) -> None:
    """The catalog's CI runs `snakemake --directory .test` from the checkout: that must plan the demo."""
    catalog = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())
    assert catalog["usage"]["software-stack-deployment"]["conda"] is True and catalog["usage"]["report"] is True
    readme = (REPO / "config" / "README.md").read_text()
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    missing = [section for section in schema["properties"] if f"| `{section}" not in readme]
    assert not missing, f"config/README.md does not describe {missing}"
    checkout = private_checkout(tmp_path)
    run = _run(SNAKEMAKE, "-s", "workflow/Snakefile", "--directory", ".test", "--cores", "2", "-n", cwd=checkout)
    assert run.returncode == 0, run.stdout[-3000:]
    jobs = planned_jobs(run)
    assert jobs["demo_data"] == 1 and jobs["summarize"] == 2, jobs


def _module_snakefile(folder: Path, workflow: Path) -> Path:
    """What `snakedeploy deploy-workflow` writes, pointing at a local checkout."""
    snakefile = folder / "workflow" / "Snakefile"
    snakefile.parent.mkdir(parents=True)
    snakefile.write_text(
        'configfile: "config/config.yaml"\n\n\n'
        "module regnn:\n"
        f'    snakefile:\n        "{workflow}"\n'
        "    config:\n        config\n\n\n"
        "use rule * from regnn as regnn_*\n"
    )
    return snakefile


def test_deployed_as_a_module_it_plans_the_demo_and_runs_its_dataset_stage(tmp_path: Path) -> None:
    checkout = private_checkout(tmp_path / "code")
    # Every process importing regnn from the copy says so: the jobs must run the module's own code, not the
    # package installed in this environment (which is the real tree's).
    with (checkout / "src/regnn/__init__.py").open("a") as f:
        f.write("\nimport sys as _s\nwith open('imported-regnn.txt', 'a') as _f:\n"
                "    _f.write(f'{_s.argv[-1]} {__file__}\\n')\n")
    user = tmp_path / "user"
    snakefile = _module_snakefile(user, checkout / "workflow" / "Snakefile")
    (user / "config").mkdir()
    (user / "config" / "config.yaml").write_text(yaml.safe_dump(demo_config(), sort_keys=False))
    run = _run(SNAKEMAKE, "-s", snakefile, "--cores", "2", "-n", cwd=user)
    assert run.returncode == 0, run.stdout[-3000:]
    jobs = planned_jobs(run)
    assert jobs["regnn_all"] == 1 and jobs["regnn_train"] == 4 and jobs["regnn_summarize"] == 2, jobs
    run = _run(SNAKEMAKE, "-s", snakefile, "--cores", "2", "results/dataset/test/index.tsv", cwd=user)
    assert run.returncode == 0, run.stdout[-3000:]
    assert (user / "results/dataset/test/emotions.h5").is_file()
    imports = (user / "imported-regnn.txt").read_text().splitlines()
    jobs = [line for line in imports if "index_split" in line.split()[0]]
    assert jobs and all(line.split()[1] == str(checkout / "src/regnn/__init__.py") for line in jobs), imports


def test_conda_environment_is_the_lock_and_resolves_offline(tmp_path: Path) -> None:
    """No conda channel is reachable here, so the environment is not built: its pip part must be exactly
    the lock, and resolving it (uv, offline, from the cache `make install` filled) must give the lock back."""
    env = yaml.safe_load((REPO / "envs" / "regnn.yaml").read_text())
    text = (REPO / "envs" / "regnn.yaml").read_text()
    assert "-e " not in text and ".." not in text, "the environment must not install from the checkout"
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    check = _run(sys.executable, REPO / "envs" / "conda_env.py", "--check")
    assert check.returncode == 0, check.stdout
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(pip) + "\n")
    resolved = tmp_path / "resolved.txt"
    run = _run(BIN / "uv", "pip", "compile", "--offline", "--quiet", "--python", sys.executable,
               requirements, "-o", resolved)
    assert run.returncode == 0, run.stdout[-3000:]
    lock = [line for line in resolved.read_text().splitlines() if "==" in line and not line.startswith(" ")]
    assert sorted(lock) == sorted(pip)
