# xaiboard: `make demo` serves the demo dashboard; `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501
LOGDIR ?= summaries
DEMO_LIMIT ?= 64
PYTEST_ARGS ?=
# The KServe ModelServer the tests serve the demo CNN from: its own venv, since kserve's pins
# (numpy, pandas, protobuf, psutil) conflict with requirements.txt.
KSERVE_VENV ?= .venv-kserve
# The Seldon Core microservice and MLServer the served-model tests and bench/remote.py use: their own
# venvs for the same reason (seldon-core pins numpy < 2, Flask 2.2, protobuf 3; mlserver its FastAPI).
SELDON_VENV ?= .venv-seldon
MLSERVER_VENV ?= .venv-mlserver
SERVER_VENVS := $(KSERVE_VENV)/.installed $(SELDON_VENV)/.installed $(MLSERVER_VENV)/.installed
SERVER_ENV = KSERVE_VENV=$(abspath $(KSERVE_VENV)) SELDON_VENV=$(abspath $(SELDON_VENV)) \
	MLSERVER_VENV=$(abspath $(MLSERVER_VENV))

.PHONY: setup venvs demo demo-run serve test bench clean

# requirements-extras.txt: the [timm], [hf] and [lightning] extras and the tests' grad-cam, every package they
# pull in pinned, torch kept at 2.13.0. timm imports torchvision, whose registry builds for our
# torch are CUDA builds: their C extension does not load beside torch CPU and `import torchvision`
# dies registering a fake kernel for torchvision::nms. The product never needs torchvision; the
# tests import timm only through tests/timm_import.py, which defines the two missing operator
# schemas with torch.library before the import (no installed file is edited).
$(VENV)/.installed: requirements.txt requirements-extras.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q -r requirements-extras.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

setup: $(VENV)/.installed

$(KSERVE_VENV)/.installed: tests/models/kserve-requirements.txt
	$(PYTHON) -m venv $(KSERVE_VENV)
	$(KSERVE_VENV)/bin/python -m pip install -q -r tests/models/kserve-requirements.txt
	touch $@

$(SELDON_VENV)/.installed: tests/models/seldon-requirements.txt
	$(PYTHON) -m venv $(SELDON_VENV)
	$(SELDON_VENV)/bin/python -m pip install -q -r tests/models/seldon-requirements.txt
	# gunicorn 20.1 (seldon-core 1.18's pin) imports pkg_resources, which setuptools 81 removed; torch's
	# metadata asks for setuptools >= 77, which it does not import at run time: pip warns, both work.
	$(SELDON_VENV)/bin/python -m pip install -q --no-deps setuptools==69.5.1
	touch $@

$(MLSERVER_VENV)/.installed: tests/models/mlserver-requirements.txt
	$(PYTHON) -m venv $(MLSERVER_VENV)
	$(MLSERVER_VENV)/bin/python -m pip install -q -r tests/models/mlserver-requirements.txt
	touch $@

demo-run: setup
	$(VENV)/bin/xai-core demo --limit $(DEMO_LIMIT) --out $(LOGDIR)/demo

demo: demo-run
	@echo "Serving the dashboard on http://127.0.0.1:$(PORT) (Ctrl-C to stop)"
	$(VENV)/bin/xai-core serve --logdir $(LOGDIR) --port $(PORT) --host 127.0.0.1

serve: setup
	$(VENV)/bin/xai-core serve --logdir $(LOGDIR) --port $(PORT) --host 127.0.0.1

# Our venv and the three test servers' are independent: built side by side (on two cores about
# 2 min instead of 5 one after the other).
venvs:
	$(MAKE) -j4 setup $(SERVER_VENVS)

test: venvs
	$(SERVER_ENV) $(PY) -m pytest -q -rs $(PYTEST_ARGS) tests

bench: venvs
	$(SERVER_ENV) $(PY) bench/run_all.py

clean:
	rm -rf $(VENV) $(KSERVE_VENV) $(SELDON_VENV) $(MLSERVER_VENV) data/demo summaries/demo .pytest_cache
