# gan_tpu: `make demo` trains a tiny CycleGAN end to end; `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install docs test test-slow test-compat demo submit bench-quality bench-monet clean data wheel kernel bench bench-quick

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[tf,test]'
	touch $(STAMP)

# The README's and docs/models-reference.md's generated tables, from the model registry
# and the shipped pipelines (tests/test_docs.py fails when they are stale).
docs: $(STAMP)
	$(BIN)/python -m gan_tpu.models.catalog --write README.md docs/models-reference.md

# Two pytest workers: XLA compiles are single-threaded, so two cores halve the wall time.
# Whole files per worker (a file's compiled models are made once), longest first (conftest.py).
JOBS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile --no-loadscope-reorder -m "not slow" $(PYTEST_ARGS)

# The tests marked slow (docs/development.md): worth running, too slow for `make test`.
# XLA's CPU code at full optimisation here: these tests step many times (make test compiles
# at level 0, tests/conftest.py, where compiling is most of the cost).
test-slow: $(STAMP)
	XLA_FLAGS="$$XLA_FLAGS --xla_backend_optimization_level=3" $(BIN)/python -m pytest -n $(JOBS) --dist loadfile --no-loadscope-reorder -m slow $(PYTEST_ARGS)

# The support matrix (README): one venv per row under .compat/, gan_tpu from its wheel as
# users install it; ROWS="kaggle-tpu gpu-tf219 floor" (the default) picks rows.
test-compat: wheel
	$(BIN)/python .ci/compat.py $$(ls dist/gan_tpu-*.whl) $(ROWS)

demo: $(STAMP)
	$(BIN)/gan-tpu demo $(if $(OUT),--out $(OUT),)

# The competition scores notebook versions only (docs/submitting.md). From a GPU box:
# make submit RUN=runs/cyclegan MESSAGE="..." uploads the run's generator (+ its budget record),
# paints images.zip in kernels/gan-tpu-generate on Kaggle, waits, validates and submits it.
submit: wheel
	$(BIN)/gan-tpu submit --run $(or $(RUN),$(error RUN=runs/NAME: the run to submit)) -m "$(or $(MESSAGE),gan_tpu submission)"

# Quality on real images (../shared/realdata, or REALDATA=DIR with monet2photo's folders)
bench-quality: $(STAMP)
	$(BIN)/python bench/bench_quality.py paired $(if $(REALDATA),--realdata $(REALDATA),) $(BENCH_ARGS)

bench-monet: $(STAMP)
	$(BIN)/python bench/bench_quality.py monet $(if $(REALDATA),--realdata $(REALDATA),) $(BENCH_ARGS)

# Kaggle: `make data` downloads the competition into data/gan-getting-started (kaggle.json
# needed); `make kernel KERNEL=tpu-cyclegan` (or gpu-cyclegan) uploads the wheel as a new
# version of <you>/gan-tpu-wheel, pushes kernels/KERNEL, waits for that version (WAIT=0: don't),
# downloads its images.zip into kaggle_output/ and validates it; SUBMIT=1 MESSAGE="..." submits it;
# INCEPTION=OWNER/SLUG attaches a dataset (or Kaggle Model) with Kaggle's Inception graph.
data: $(STAMP)
	$(BIN)/gan-tpu data $(if $(OUT),--out $(OUT),)

wheel: $(STAMP)
	$(BIN)/python -c "import setuptools, wheel" 2>/dev/null || $(BIN)/python -m pip install --quiet "setuptools>=61" wheel
	rm -rf build dist/gan_tpu-*.whl   # a stale build/ would ship deleted files
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation . -w dist
	@ls dist/gan_tpu-*.whl

kernel: wheel
	$(BIN)/gan-tpu kernels
	$(BIN)/gan-tpu kernel $(or $(KERNEL),tpu-cyclegan) $(if $(filter 0,$(WAIT)),,--wait) \
		$(if $(INCEPTION),--inception $(INCEPTION),) \
		$(if $(SUBMIT),--submit -m "$(or $(MESSAGE),gan_tpu $(or $(KERNEL),tpu-cyclegan))",)

# Side-by-side benchmarks -> BENCHMARKS.md (bench-quick: under 5 minutes on 2 CPU cores).
# The starter-notebook baseline saves with PIL, so these install Pillow into the venv.
BENCH_DEPS := $(VENV)/.bench-deps
$(BENCH_DEPS): $(STAMP)
	$(BIN)/python -c "import PIL" 2>/dev/null || $(BIN)/python -m pip install --quiet pillow
	touch $@

bench: $(BENCH_DEPS)
	$(BIN)/python bench/bench_suite.py $(BENCH_ARGS)

bench-quick: $(BENCH_DEPS)
	$(BIN)/python bench/bench_suite.py --quick $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info demo_out .compat
