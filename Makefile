# fmnist-kit: `make run` (the walkthrough) and `make test` (what CI runs). See README.md.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
ENV := source scripts/env.sh &&
PROFILE ?= $(or $(FMNIST_PROFILE),quick)
DATA_SHA256 = $(shell sed -n 's/^sha256: *\([0-9a-f]\{64\}\).*/\1/p' data/README.md)

.PHONY: setup build data run test notebooks bench lab env clean

setup:
	@scripts/setup.sh

build: setup
	@$(ENV) cargo build --release --workspace

# Rebuilt only when missing; checked against the sha256 in data/README.md.
data: build
	@$(ENV) if [ -f data/data.tar.gz ]; then echo "[data] data/data.tar.gz present"; \
	  else fmnist prepare-data --out data/data.tar.gz --expect-sha256 $(DATA_SHA256); fi

run: data
	@$(ENV) python tests/run_notebooks.py --profile $(PROFILE) --out out/notebooks --html out/html --figures out/figures
	@echo "Executed notebooks: out/notebooks/   HTML: out/html/   figures: out/figures/"

# Notebooks are generated from notebooks/src/*.py (the only place to edit them).
notebooks:
	@python3 scripts/notebooks.py

test: data
	@python3 scripts/notebooks.py --check
	@$(ENV) cargo test --release --workspace
	@$(ENV) python tests/run_notebooks.py --profile smoke --out out/smoke
	@$(ENV) python tests/run_notebooks.py --profile smoke --out out/harness-check --expect-failure tests/fixtures/*.ipynb

bench: data
	@$(ENV) scripts/bench.sh

# Interactive JupyterLab with the kit's kernel; it gets its own evcxr build folder (a copy of the
# batch one when that is warm), since two kernels sharing one crash.
lab: data
	@$(ENV) lab="$$FMNIST_CACHE_DIR/evcxr-build/lab"; batch="$$FMNIST_CACHE_DIR/evcxr-build/batch"; \
	  if [ -z "$$(ls -A "$$lab" 2>/dev/null)" ] && [ -n "$$(ls -A "$$batch" 2>/dev/null)" ]; then cp -a "$$batch/." "$$lab/"; fi; \
	  cd notebooks && jupyter lab

env:
	@scripts/env.sh --print

clean:
	rm -rf out artifacts data/data.tar.gz
