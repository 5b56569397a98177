# Two commands, each with its own idempotent set-up into .venv:
#   make run    the main job (random search over LeNet, figures and summary in runs/)
#   make test   every test, notebooks included (and the quick benchmark suite once)
#   make test-fast  the fast tier after each edit: import contracts and every module's
#               logic without notebooks, Ray or LeNet (under 2 minutes)
#   make bench  the benchmark suite B1-B6, B8 and B9, tables printed and in benchmarks/results/;
#               make bench QUICK=1 for the small version (under 3 minutes)
#   make notebooks  re-run every lesson in full and save its outputs in place (what is
#               committed); NB=notebooks/02_sync_vs_async.ipynb for one
#   make book   the course as a web book in English, Simplified and Traditional Chinese,
#               built from the committed notebooks (not executed) into _build/html/;
#               open _build/html/index.html. Needs no network once set up
#   make notebooks-zh  write the Chinese editions (notebooks/zh-hans/, notebooks/zh-hant/)
#               from the English notebooks and translations/zh-hans/*.md
# A second run skips the installation when pyproject.toml has not changed.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
KERNEL := d2l-hpo
NOTEBOOKS := $(wildcard notebooks/*.ipynb)

.PHONY: run test test-fast bench book notebooks notebooks-zh setup data clean

run: $(STAMP) data
	$(PY) -m d2l_hpo run $(ARGS)

# tests/ first, spread over TEST_WORKERS pytest-xdist processes (most tests wait for
# trial processes; the Ray tests stay on one worker), with the lessons whose claims
# compare no timings of this machine (BESIDE_TESTS, the same list as in tests/conftest.py:
# lesson 04 joins the Ray tests' worker, lessons 06 and 07 replay in simulated time and
# 07's real runs check no timing); then the
# other lessons one at a time with nothing else running: their claims compare timings
# (run beside the tests, even at nice 19, lesson 01's hand-built search finished no trial
# in its budget). Each part lists its slowest 20 tests.
TEST_WORKERS ?= 3
BESIDE_TESTS := notebooks/04_scaling_out_with_ray.ipynb notebooks/06_async_search_at_scale.ipynb notebooks/07_searchers_that_learn.ipynb
ALONE := $(filter-out $(BESIDE_TESTS),$(NOTEBOOKS))
# a notebook's kernel may take over a minute to start beside the busy tests (nbval's
# default limit is 60 s: a fresh-clone run failed on it once)
NBVAL := --nbval-lax --nbval-current-env --nbval-kernel-startup-timeout 300
test: $(STAMP) data
	$(VENV)/bin/lint-imports --no-cache
	D2L_HPO_BUDGET=quick $(PY) -m pytest tests $(BESIDE_TESTS) $(NBVAL) -n $(TEST_WORKERS) --dist loadgroup --durations=20 $(PYTEST_ARGS)
	D2L_HPO_BUDGET=quick $(PY) -m pytest $(ALONE) $(NBVAL) --durations=20 $(PYTEST_ARGS)

# after each edit: the layers and every module's logic, with in-process or synthetic
# trials (no notebook, no Ray, no LeNet): under 2 minutes
test-fast: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest tests -m "not slow and not ray" -q --durations=10 $(PYTEST_ARGS)

bench: $(STAMP) data
	$(PY) benchmarks/run_all.py $(if $(QUICK),--quick)

book: $(STAMP)
	$(PY) book/build.py

NB ?= $(NOTEBOOKS)
notebooks: $(STAMP) data
	@for nb in $(NB); do \
	  echo "running $$nb (full budget)"; \
	  D2L_HPO_BUDGET=full $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.kernel_name=$(KERNEL) --ExecutePreprocessor.timeout=-1 \
	    --ExecutePreprocessor.record_timing=False $$nb || exit 1; \
	done
	@# the Chinese editions carry the English outputs: write them again
	$(PY) translations/build.py

notebooks-zh: $(STAMP)
	$(PY) translations/build.py

setup: $(STAMP)

# The environment takes about 7.1 GB (torch 2.14.1's wheel is a CUDA build) and
# pip needs room to unpack it: say so before pip fails halfway with Errno 28.
NEED_GB := 9
$(STAMP): pyproject.toml
	@free_kb=$$(df -Pk . | awk 'NR==2 {print $$4}'); \
	if [ ! -d $(VENV)/lib ] && [ "$$free_kb" -lt $$(( $(NEED_GB) * 1024 * 1024 )) ]; then \
	  echo "error: only $$(( free_kb / 1024 / 1024 )) GB free on $$(df -P . | awk 'NR==2 {print $$6}');" \
	       "the environment in $(VENV) needs about $(NEED_GB) GB while it installs (7.1 GB after)." \
	       "Free some space and run make again." >&2; \
	  exit 1; \
	fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,ray,bench,book]"
	@# d2l pins numpy 1.23 and other old releases that syne-tune 0.16 cannot use;
	@# pyproject.toml declares what d2l needs at run time instead
	$(PY) -m pip install --quiet --no-deps $$($(PY) -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["tool"]["d2l-hpo"]["install-without-deps"]))')
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (d2l-hpo)" >/dev/null
	touch $(STAMP)

# Fashion-MNIST offline: Debian's package, installed when we may (root, apt, no
# D2L_HPO_DATA); otherwise d2l_hpo.lesson.data explains the two ways to provide it.
DEBIAN_DATA := /usr/share/datasets/fashion-mnist
data:
	@if [ ! -d $(DEBIAN_DATA) ] && [ -z "$$D2L_HPO_DATA" ] && [ "$$(id -u)" = 0 ] \
	    && command -v apt-get >/dev/null; then \
	  echo "installing Debian's dataset-fashion-mnist"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	fi

clean:
	rm -rf $(VENV) runs _build
