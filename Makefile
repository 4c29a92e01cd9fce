# Two entry points: `make demo` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export MPLBACKEND ?= Agg

.PHONY: demo test lint bench bench-sbibm venv clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@# A CPU build of torch lies on disk; an open range would pull a multi-GB CUDA build.
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	@$(BIN)/python -m pip install -q -e ".[test,cluster,export]"
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/hepsbi run examples/drell_yan_contact.yaml --out runs/drell_yan_contact

# ruff (lint) and mypy (types of src/hepsbi) first: CI runs `make test`.
test: lint
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	cd benchmarks && export HEPSBI_RECORD=1 && ../$(BIN)/python accuracy.py && ../$(BIN)/python throughput.py \
		&& ../$(BIN)/python simulation.py && ../$(BIN)/python closure.py && ../$(BIN)/python fits.py

# sbibm pins an old sbi: it and the anchor (sbi 0.27) live in .venv-sbibm, which never imports hepsbi.
SBIBM_STAMP := .venv-sbibm/.installed
$(SBIBM_STAMP):
	@test -x .venv-sbibm/bin/python || $(PYTHON) -m venv .venv-sbibm
	@.venv-sbibm/bin/python -c "import torch" 2>/dev/null || .venv-sbibm/bin/python -m pip install -q torch==2.13.0
	@.venv-sbibm/bin/python -m pip install -q sbi==0.27.0 pyro-ppl pandas scikit-learn future autograd tqdm
	@.venv-sbibm/bin/python -m pip install -q --no-deps sbibm==1.1.0
	@touch $(SBIBM_STAMP)

bench-sbibm: $(STAMP) $(SBIBM_STAMP)
	cd benchmarks && HEPSBI_RECORD=1 ../$(BIN)/python sbibm.py

clean:
	rm -rf $(VENV) .venv-sbibm runs .pytest_cache
