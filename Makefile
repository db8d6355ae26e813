# xaiboard: `make demo` serves the demo dashboard; `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501
LOGDIR ?= summaries
DEMO_LIMIT ?= 64
# The KServe ModelServer the tests serve the demo CNN from: its own venv, since kserve's pins
# (numpy, pandas, protobuf, psutil) conflict with requirements.txt.
KSERVE_VENV ?= .venv-kserve

.PHONY: setup demo demo-run serve test bench clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

setup: $(VENV)/.installed

$(KSERVE_VENV)/.installed: tests/models/kserve-requirements.txt
	$(PYTHON) -m venv $(KSERVE_VENV)
	$(KSERVE_VENV)/bin/python -m pip install -q -r tests/models/kserve-requirements.txt
	touch $@

demo-run: setup
	$(VENV)/bin/xai-core demo --limit $(DEMO_LIMIT) --out $(LOGDIR)/demo

demo: demo-run
	@echo "Serving the dashboard on http://127.0.0.1:$(PORT) (Ctrl-C to stop)"
	$(VENV)/bin/xai-core serve --logdir $(LOGDIR) --port $(PORT) --host 127.0.0.1

serve: setup
	$(VENV)/bin/xai-core serve --logdir $(LOGDIR) --port $(PORT) --host 127.0.0.1

test: setup $(KSERVE_VENV)/.installed
	KSERVE_VENV=$(abspath $(KSERVE_VENV)) $(PY) -m pytest -q tests

bench: setup $(KSERVE_VENV)/.installed
	KSERVE_VENV=$(abspath $(KSERVE_VENV)) $(PY) bench/run_all.py

clean:
	rm -rf $(VENV) $(KSERVE_VENV) data/demo summaries/demo .pytest_cache
