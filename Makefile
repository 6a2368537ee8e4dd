# Two entry points for a fresh machine with Python 3.11+: `make demo` and `make test`.
# One stamp per extra: `make demo` installs only the core dependencies the demo needs, `make test`
# (and `make install`) add the test extra; each reinstalls (and recompiles the CPU counting
# kernel) when pyproject.toml, setup.py or the kernel's source changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORE_STAMP := $(VENV)/.installed-core
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(CORE_STAMP): pyproject.toml setup.py dragon_gpu/engines/_cpu_count.c | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The test extra includes the core: its stamp stands for both.
$(TEST_STAMP): pyproject.toml setup.py dragon_gpu/engines/_cpu_count.c | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(CORE_STAMP)

install: $(TEST_STAMP)

demo: $(CORE_STAMP)
	$(BIN)/dragon-gpu demo

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info dragon_gpu/engines/*.so
