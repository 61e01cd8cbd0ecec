# fmnist-kit: `make run` (the walkthrough) and `make test` (what CI runs). See README.md.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
ENV := source scripts/env.sh &&
PROFILE ?= $(or $(FMNIST_PROFILE),quick)
DATA_SHA256 = $(shell sed -n 's/^sha256: *\([0-9a-f]\{64\}\).*/\1/p' data/README.md)

.PHONY: setup build data run test test-browser test-slurm notebooks bench bench-tta lab tensorboard env clean check-torch211 gpu-bundle gpu-check-here

setup:
	@scripts/setup.sh

# One shared target folder (clones do not rebuild tch), and this checkout's own copy of the binary.
build: setup
	@$(ENV) cargo build --release --workspace && mkdir -p out/bin && \
	  if ! cmp -s "$$CARGO_TARGET_DIR/release/fmnist" out/bin/fmnist; then \
	    cp "$$CARGO_TARGET_DIR/release/fmnist" out/bin/.fmnist.tmp && mv out/bin/.fmnist.tmp out/bin/fmnist; fi

# Rebuilt only when missing; checked against the sha256 in data/README.md.
data: build
	@$(ENV) if [ -f data/data.tar.gz ]; then echo "[data] data/data.tar.gz present"; \
	  else fmnist prepare-data --out data/data.tar.gz --expect-sha256 $(DATA_SHA256); fi

run: data
	@$(ENV) python tests/run_notebooks.py --profile $(PROFILE) --out out/notebooks --html out/html --figures out/figures
	@echo "Executed notebooks: out/notebooks/   HTML: out/html/   figures: out/figures/"

# Notebooks are generated from notebooks/src/*.md by jupytext, in the venv (the only place to edit them).
notebooks: setup
	@$(ENV) python scripts/notebooks.py

test: data
	@$(ENV) python scripts/notebooks.py --check
	@$(ENV) cargo test --release --workspace
	@$(ENV) python tests/run_notebooks.py --profile smoke --out out/smoke --html out/smoke-html
	@$(ENV) python tests/run_notebooks.py --profile smoke --out out/harness-check --expect-failure tests/fixtures/*.ipynb
	@$(ENV) python tests/lab_server.py
	@$(ENV) python tests/lab_server.py --expect-failure
	@$(ENV) python tests/lab_interrupt.py
	@$(ENV) python tests/batch_runs.py
	@$(ENV) python tests/tensorboard_logs.py
	@$(ENV) python tests/setup_recovery.py
	@tests/checkouts.sh
	@$(MAKE) --no-print-directory test-browser BROWSER_HTML=out/smoke-html
	@$(MAKE) --no-print-directory test-slurm

# JupyterLab in Debian's Chromium (headless, Selenium): notebook 01 run from the page, its figures
# decoded; then every rendered page of BROWSER_HTML (default out/html, from make run); then
# make tensorboard's scalars page on the artifacts of those notebook runs, the CNN's runs listed.
BROWSER_HTML ?= out/html
test-browser: data
	@FMNIST_BROWSER=1 scripts/setup.sh
	@$(ENV) FMNIST_PROFILE=smoke python tests/browser.py --html $(BROWSER_HTML)
	@$(ENV) python tests/tensorboard_browser.py

# The grid search on a one-node Slurm cluster started in a temporary folder (as root), with the
# recipe docs/cli.md shows: job array, dependent final job, scancel of one task and its resubmission.
test-slurm: data
	@FMNIST_SLURM=1 scripts/setup.sh
	@$(ENV) python tests/slurm_grid.py

bench: data
	@$(ENV) scripts/bench.sh

# Time to accuracy of the quick recipes, kit against PyTorch (minutes per network; not part of make test).
bench-tta: data
	@$(ENV) python scripts/bench_tta.py

# Interactive JupyterLab with the kit's kernel (scripts/lab.sh: works as root and headless, PORT=...,
# its own evcxr build folder, prints the URL with its token and an SSH tunnel line).
lab: data
	@scripts/lab.sh

# TensorBoard on the artifacts folder (scripts/tensorboard.sh: every run's event files, live; works as root
# and headless, PORT=..., LOGDIR=..., prints the URL and an SSH tunnel line).
tensorboard: setup
	@scripts/tensorboard.sh

# The kit against torch 2.11 (tch 0.24), in its own venv and target folder (scripts/torch-build.sh):
# build, the Rust tests, and fmnist doctor with that libtorch loaded.
check-torch211: data
	@scripts/torch-build.sh 2.11 test --release --workspace
	@scripts/torch-build.sh 2.11 build --release --bin fmnist
	@$(ENV) out=$$FMNIST_CACHE_DIR/torch-2.11; lib=$$($$FMNIST_CACHE_DIR/venv-torch-2.11/bin/python -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))'); \
	  LD_LIBRARY_PATH=$$lib $$out/target/release/fmnist doctor

# The GPU bundle (out/gpu-bundle, at most 60 MiB) and its check run here, on the CPU, against torch 2.11.
gpu-bundle: data
	@scripts/gpu-bundle.sh
gpu-check-here: gpu-bundle
	@$(ENV) PYTHON=$$FMNIST_CACHE_DIR/venv-torch-2.11/bin/python; export PATH=$$FMNIST_CACHE_DIR/venv-torch-2.11/bin:$$PATH; \
	  OUT=out/gpu-check out/gpu-bundle/gpu-check.sh

env:
	@scripts/env.sh --print

clean:
	rm -rf out artifacts data/data.tar.gz
