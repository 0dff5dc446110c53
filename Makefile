# make demo / make test: each creates .venv when missing and installs the project.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/treadmill-safety demo

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
