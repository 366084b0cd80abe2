# gan_tpu: `make demo` trains a tiny CycleGAN end to end; `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test demo submit bench-quality bench-monet clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/gan-tpu demo $(if $(OUT),--out $(OUT),)

# make submit ZIP=runs/cyclegan/images.zip MESSAGE="U-Net CycleGAN, 25 epochs"
submit: $(STAMP)
	$(BIN)/gan-tpu submit $(or $(ZIP),images.zip) -m "$(or $(MESSAGE),gan_tpu submission)"

# Quality on real images (../shared/realdata, or REALDATA=DIR with monet2photo's folders)
bench-quality: $(STAMP)
	$(BIN)/python bench/bench_quality.py paired $(if $(REALDATA),--realdata $(REALDATA),) $(BENCH_ARGS)

bench-monet: $(STAMP)
	$(BIN)/python bench/bench_quality.py monet $(if $(REALDATA),--realdata $(REALDATA),) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info demo_out
