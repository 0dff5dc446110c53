# make demo / make test: each creates .venv when missing and installs the project.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench clean lock check-lock translations

# Recipes are silent (@) and set-up output goes to stderr, so `make demo`'s first
# lines on stdout are the demo's own: the dashboard's address, the user and its password.
$(PY):
	@$(PYTHON) -m venv $(VENV) >&2

$(STAMP): $(PY) pyproject.toml
	@echo "installing the project into $(VENV)" >&2
	@$(PY) -m pip install --quiet --upgrade pip >&2
	@$(PY) -m pip install --quiet -e '.[test,lock]' >&2
	@touch $(STAMP)

demo: $(STAMP)
	@$(VENV)/bin/treadmill-safety demo

# The system packages first (.ci/system-packages): as root it installs what is
# missing, otherwise it stops here with the one command to run.
test:
	@bash .ci/system-packages
	@$(MAKE) --no-print-directory $(STAMP)
	$(PY) -m pytest -W error

# After changing a page's, a script's or a prompt's words: extract the messages and merge
# them into each language's catalog (new ones come in untranslated; the catalog test
# fails until someone translates them). Catalogs are compiled in memory at run time.
translations: $(STAMP)
	@$(VENV)/bin/pybabel -q extract --no-location --sort-output -F babel.cfg -k N_ \
		-o web/translations/messages.pot .
	@$(VENV)/bin/pybabel -q update --no-fuzzy-matching --ignore-obsolete -i web/translations/messages.pot \
		-d web/translations -D messages
	@$(VENV)/bin/pybabel -q extract --no-location --sort-output -F voice/babel.cfg -k N_ \
		-o voice/translations/voice.pot .
	@$(VENV)/bin/pybabel -q update --no-fuzzy-matching --ignore-obsolete -i voice/translations/voice.pot \
		-d voice/translations -D voice

# The Pi's dependencies (the base ones and the `pi` extra), pinned with every
# file's hash for Python 3.11 and up on every platform; `make install` installs
# exactly these. `make lock` keeps the pins that still fit pyproject.toml;
# `make lock UV_FLAGS=--upgrade` takes the newest releases.
LOCK       := requirements-pi.lock
UV_COMPILE  = $(VENV)/bin/uv pip compile pyproject.toml --extra pi --universal \
              --python-version 3.11 --generate-hashes --custom-compile-command 'make lock' \
              --quiet $(UV_FLAGS)

lock: $(STAMP)
	$(UV_COMPILE) -o $(LOCK)

# CI: the lock still matches pyproject.toml, and every pin downloads, hash-checked,
# for the Pi (aarch64, Python 3.11 and 3.13).
check-lock: $(STAMP)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cp $(LOCK) "$$tmp/lock" && \
	$(UV_COMPILE) -o "$$tmp/lock" && $(PY) .ci/check_lock.py $(LOCK) "$$tmp/lock"

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
