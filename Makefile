# specc developer tasks. `make demo` and `make test` work on a fresh machine:
# they create .venv when missing and install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS ?= constraints.txt
STAMP := $(VENV)/.specc-installed
PYTEST_ARGS ?=

.PHONY: install demo test test-fast lint format bench bench-quick gpu-bench gpu-check bench-distributed fuzz clean check-no-cuda goldens docs zoo

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[dev]'
	@$(MAKE) --no-print-directory check-no-cuda
	@touch $(STAMP)

install: $(STAMP)

# Fail loudly if a CUDA build sneaked in (several GB, useless on these machines).
check-no-cuda:
	@if $(BIN)/python -m pip list 2>/dev/null | grep -i '^nvidia-'; then \
		echo "error: nvidia-* packages were installed; use the CPU torch pinned in $(CONSTRAINTS)" >&2; \
		exit 1; fi

# The main job on an embedded default: check every bundled spec, show a summary, draw the
# residual network (Mermaid and DOT; SVG when Graphviz is installed), compile to
# every target, train the digits CNN (scikit-learn's bundled digits: no download) in both
# frameworks, and crosscheck Keras, PyTorch and ONNX (random weights, then the trained run).
DEMO_OUT ?= out/demo
demo: $(STAMP)
	$(BIN)/specc validate specs/*.yaml specs/*.json
	$(BIN)/specc summary specs/mnist_cnn.yaml
	$(BIN)/specc summary specs/residual_block.yaml
	@rm -rf $(DEMO_OUT) && mkdir -p $(DEMO_OUT)
	$(BIN)/specc plot specs/residual_block.yaml -o $(DEMO_OUT)/residual.mmd
	$(BIN)/specc plot specs/residual_block.yaml -o $(DEMO_OUT)/residual.dot
	@if command -v dot >/dev/null 2>&1; then \
		$(BIN)/specc plot specs/residual_block.yaml -o $(DEMO_OUT)/residual.svg; \
	else echo "Graphviz 'dot' not installed: skipping residual.svg (apt-get install graphviz)"; fi
	$(BIN)/specc compile specs/residual_block.yaml --target keras -o $(DEMO_OUT)/residual_keras.py
	$(BIN)/specc compile specs/residual_block.yaml --target pytorch -o $(DEMO_OUT)/residual_pytorch.py
	$(BIN)/specc compile specs/residual_block.yaml --target onnx -o $(DEMO_OUT)/residual.onnx
	$(BIN)/specc train specs/digits_cnn.yaml --backend pytorch --epochs 5 --out $(DEMO_OUT)/digits-pytorch
	$(BIN)/specc train specs/digits_cnn.yaml --backend keras --epochs 5 --out $(DEMO_OUT)/digits-keras
	$(BIN)/specc crosscheck specs/residual_block.yaml
	$(BIN)/specc crosscheck specs/digits_cnn.yaml --run $(DEMO_OUT)/digits-pytorch
	@echo "demo outputs in $(DEMO_OUT)/"

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m 'not slow' $(PYTEST_ARGS)

goldens: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_goldens.py --update-goldens

zoo: $(STAMP)  ## the zoo specs against keras.applications: counts, lines, summary time
	$(BIN)/python bench/zoo.py

docs: $(STAMP)
	$(BIN)/python -m specc.layers
	$(BIN)/python -m specc.reference
	$(BIN)/specc schema -o docs/spec.schema.json
	$(BIN)/python -c "from specc.diagcodes import markdown; print(markdown())" > docs/diagnostics.md

lint: $(STAMP)
	$(BIN)/ruff check specc tests bench examples
	$(BIN)/ruff format --check specc tests bench examples

format: $(STAMP)
	$(BIN)/ruff format specc tests bench examples
	$(BIN)/ruff check --fix specc tests bench examples

bench: $(STAMP)
	$(BIN)/python bench/run.py
	@if [ -f bench/results/distributed.json ]; then \
		$(BIN)/python bench/distributed.py --markdown-from bench/results/distributed.json >/dev/null; fi

# 1 process x 2 threads vs 2 DDP processes x 1 thread (about 3 minutes; its BENCHMARKS.md section)
bench-distributed: $(STAMP)
	$(BIN)/python bench/distributed.py

bench-quick: $(STAMP)
	$(BIN)/python bench/run.py --quick

# Generated PyTorch (ResNet50, MobileNetV2, MNIST CNN) vs torchvision / hand-written models on
# CUDA, bf16, with and without channels-last; prints one line and exits 0 without CUDA.
gpu-bench: $(STAMP)
	$(BIN)/python bench/gpu_bench.py --json bench/results/gpu.json

# CUDA training checks (fp32, bf16/fp16, 2-GPU DDP, crosscheck); says "no CUDA device" and
# succeeds elsewhere. DATA_DIR: where MNIST is (default: $$SPECC_DATA_DIR or the cache).
gpu-check: $(STAMP)
	PYTHON=$(BIN)/python bench/gpu_check.sh $(DATA_DIR)

# The long hypothesis profiles: thousands of random specs and mutated inputs; then the
# fault soak of runs (tests/test_fault_soak.py).
fuzz: $(STAMP)
	SPECC_FUZZ=long $(BIN)/python -m pytest -q -n 2 tests/test_properties.py tests/test_fuzz.py tests/test_codegen_random.py tests/test_onnx_names.py tests/test_train_after_validate.py
	# fault soak of runs: random kills (both backends), a full disk (tmpfs, as root), corrupted
	# run files; prints the counts of each outcome (SPECC_SOAK_ROUNDS, default 4)
	SPECC_FUZZ=long $(BIN)/python -m pytest -q -s tests/test_fault_soak.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .hypothesis
