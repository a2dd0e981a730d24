# The README's two set-up commands: `make demo` and `make test`. Both create .venv here.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench train-baseline clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/spinlens analyze examples/site-builder-blog.txt --format html --output out/demo-report.html
	@echo "HTML report: $(CURDIR)/out/demo-report.html"

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy src
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy src

bench: $(STAMP)
	$(PY) benchmarks/techniques_quality.py

train-baseline: $(STAMP)
	$(VENV)/bin/spinlens train baseline --data ../shared/data/ptc --out models/baseline-linear

clean:
	rm -rf $(VENV) out build *.egg-info
