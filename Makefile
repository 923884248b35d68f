# Fresh-machine entry points. The constraints file pins torch to its CPU build:
# a bare `torch` on a new venv pulls a multi-GB CUDA build.
PY ?= python3
VENV ?= .venv
PIP = $(VENV)/bin/pip install -q -c constraints.txt

.PHONY: venv demo test lint bench

$(VENV)/bin/python:
	$(PY) -m venv $(VENV)

venv: $(VENV)/bin/python
	$(PIP) -e '.[test]'

demo: venv
	$(VENV)/bin/edgekd distill --chain 3

test: venv
	$(VENV)/bin/python -m pytest -q

lint: venv
	$(VENV)/bin/ruff check .

bench: venv
	$(VENV)/bin/pip install -q --no-deps torchdistill  # the peer benchmark only; its torchvision pin cannot be met
	$(VENV)/bin/python -m benchmarks
