# make demo / make test: each creates .venv when missing and installs the project.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench clean

# Recipes are silent (@) and set-up output goes to stderr, so `make demo`'s first
# lines on stdout are the demo's own: the dashboard's address and the password.
$(PY):
	@$(PYTHON) -m venv $(VENV) >&2

$(STAMP): $(PY) pyproject.toml
	@echo "installing the project into $(VENV)" >&2
	@$(PY) -m pip install --quiet --upgrade pip >&2
	@$(PY) -m pip install --quiet -e '.[test]' >&2
	@touch $(STAMP)

demo: $(STAMP)
	@$(VENV)/bin/treadmill-safety demo

test: $(STAMP)
	$(PY) -m pytest -W error

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info

.PHONY: install uninstall

# On the Pi, as root: sudo make install. DESTDIR=/some/root stages the files only.
install:
	DESTDIR='$(DESTDIR)' PYTHON='$(PYTHON)' bash systemd/install.sh

uninstall:
	DESTDIR='$(DESTDIR)' bash systemd/install.sh --uninstall
