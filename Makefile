# Two commands for a newcomer:
#   make run    set up .venv and run the whole lab: `autoenc study` (AUTOENC_DATA_DIR points at the data)
#   make test   set up .venv with the test extras and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The CPU build of PyTorch this project is developed and tested with; pyproject accepts a range.
TORCH  ?= torch==2.13.0

.PHONY: run test setup setup-test browser clean

$(VENV)/.setup-done: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) show torch >/dev/null 2>&1 || $(PIP) install -q "$(TORCH)"
	$(PIP) install -q -c constraints.txt -e .
	touch $@

$(VENV)/.test-done: $(VENV)/.setup-done
	$(PIP) install -q -c constraints.txt -e ".[test,ray,bm3d,slurm,keras]"
	touch $@

setup: $(VENV)/.setup-done
setup-test: $(VENV)/.test-done browser

# Headless Chromium for the report's browser test (Debian packages; needs root or sudo).
browser:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	    elif command -v sudo >/dev/null 2>&1; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	    else echo "note: chromium not installed and no root: the browser test will be skipped"; fi; }

run: setup
	$(VENV)/bin/autoenc study

test: setup-test
	$(VENV)/bin/python -m pytest

clean:
	rm -rf $(VENV) outputs multirun
