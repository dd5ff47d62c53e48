# make demo: create .venv, install the core and every plugin, run the default training.
# make test: create or reuse .venv, run every test of the core and of every plugin (in two processes).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PLUGINS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))
STAMP := $(VENV)/.installed

.PHONY: install demo test clean

install: $(STAMP)

# Installs run from the repository root so that relative paths resolve here.
$(STAMP): core/pyproject.toml $(wildcard plugins/*/pyproject.toml) constraints.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt \
		-e "./core[explain,serve]" $(foreach p,$(PLUGINS),-e ./$(p)) pytest pytest-xdist setuptools
	# then each plugin's test extra (pip 23.2 cannot resolve local plugins that depend on each other
	# when they are named with extras in one go)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt \
		$(foreach p,$(PLUGINS),-e "./$(p)[test]")
	# byte-compile the editable sources once, as pip does for a regular install: with PYTHONDONTWRITEBYTECODE
	# set, every process would otherwise compile Coupler's modules again (about 0.1 s of each coupler train)
	$(PY) -m compileall -q core/src $(foreach p,$(PLUGINS),$(p)src)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/coupler train

# Two workers (pytest-xdist), each test file on one of them: a file's module-scoped runs are made once, and the
# files that pip-install tests/plugins/* build each distribution in one process. Each worker, and each process a
# test starts, computes on one thread (OMP_NUM_THREADS=1): torch's and XGBoost's thread pools, two per worker on
# two cores, would wait on each other. TEST_WORKERS=0: one process, every library's default threads.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(if $(filter 0,$(TEST_WORKERS)),,OMP_NUM_THREADS=1) $(PY) -m pytest \
		$(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

clean:
	rm -rf $(VENV) runs multirun
