# gan_tpu: `make demo` trains a tiny CycleGAN end to end; `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test demo submit clean

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

clean:
	rm -rf $(VENV) build *.egg-info demo_out
