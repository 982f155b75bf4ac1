# The README's commands: `make demo` and `make test` (both set up what they need first).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
SNAKEMAKE := $(VENV)/bin/snakemake
CORES ?= 2
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT_PACKAGES := graphviz gcc

.PHONY: install system-packages browser lock demo demo-mars test lint dag report clean-demo

install: system-packages $(VENV)/.installed

# System packages: graphviz (make dag), gcc (the metrics' DTW kernel) and a local SLURM for the cluster test; installed only when missing.
system-packages:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages: $$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@bash .ci/install-slurm.sh

# Headless Chromium (Debian's chromium-headless-shell) for the test that opens the report; installed when no
# Chromium is on PATH. If it cannot be installed, that test skips and says why.
BROWSER_PACKAGE := chromium-headless-shell
browser:
	@command -v chromium-headless-shell >/dev/null || command -v chromium >/dev/null || { \
	  echo "installing $(BROWSER_PACKAGE) (the report's browser test)"; \
	  ( $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $(BROWSER_PACKAGE) >/dev/null ) || \
	  echo "could not install $(BROWSER_PACKAGE): the report's browser test will be skipped"; }

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	test -x $(UV) || $(VENV)/bin/pip install -q uv==0.13.9
	$(UV) pip sync -q --python $(PY) requirements.lock
	$(UV) pip install -q --python $(PY) --no-deps -e .
	touch $@

# Re-resolve the exact versions after editing requirements.in (torch and torchvision stay pinned together),
# and write them into the rules' conda environment.
lock: $(VENV)/.installed
	$(UV) pip compile -q --python $(PY) requirements.in -o requirements.lock
	$(PY) envs/conda_env.py

# Both demos' tiny models train and generate faster on one torch thread per job: two such jobs run side by
# side on 2 cores, where one job's two threads mostly wait on each other (measured: make demo 9 min 28 s with
# 2-thread training, its model stages 2 min faster this way). A thread count changes torch's float sums, so the
# printed tables are those of this setting.
DEMO_THREADS := --set-threads train=1 generate=1

demo: install
	$(SNAKEMAKE) --cores $(CORES) --configfile config/demo.yaml $(DEMO_THREADS)
	@echo; echo "results/metrics/test.tsv:"
	@$(PY) -c 'import pandas as pd; t = pd.read_csv("results/metrics/test.tsv", sep="\t"); print(t.to_string(index=False, na_rep="", float_format="{:.4g}".format))'

# The MARS demo (data.protocol: react2025) in its own working directory, so it never mixes with `make demo`'s.
MARS_DEMO := results/demo-mars
demo-mars: install
	$(SNAKEMAKE) --cores $(CORES) --configfile config/demo_mars.yaml --directory $(MARS_DEMO) $(DEMO_THREADS)
	@echo; echo "$(MARS_DEMO)/results/metrics/test.tsv:"
	@$(PY) -c 'import pandas as pd; t = pd.read_csv("$(MARS_DEMO)/results/metrics/test.tsv", sep="\t"); print(t.to_string(index=False, na_rep="", float_format="{:.4g}".format))'

test: install browser
	$(PY) -m pytest -q

# The community's checks (the test suite runs them too): formatting and Snakemake's linter.
lint: install
	$(VENV)/bin/snakefmt --check --compact-diff Snakefile workflow/
	$(SNAKEMAKE) --lint --configfile config/demo.yaml

dag: install
	mkdir -p dag
	$(SNAKEMAKE) --configfile config/demo.yaml --rulegraph | dot -Tsvg > dag/rulegraph.svg
	$(SNAKEMAKE) --configfile config/demo.yaml --rulegraph | dot -Tpdf > dag/rulegraph.pdf
	$(SNAKEMAKE) --configfile config/demo.yaml --dag | dot -Tsvg > dag/jobs.svg
	@echo "wrote dag/rulegraph.svg, dag/rulegraph.pdf and dag/jobs.svg"

report: install
	$(SNAKEMAKE) --configfile config/demo.yaml --report report.html
	@echo "wrote report.html"

clean-demo:
	rm -rf results/demo-mars results/demo-data results/dataset results/features results/experiments results/baselines results/metrics results/logs
