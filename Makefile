# Two commands set up a fresh machine:  `make book`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv book test bench clean help

help:
	@echo "make book   - install (into .venv), execute every notebook (full profile), build _build/html"
	@echo "make test   - install, run unit/hygiene tests and every notebook under nbmake (smoke profile)"
	@echo "make bench  - execute every notebook from scratch (full profile), print the results table,"
	@echo "              write _build/results.json"

venv: $(STAMP)

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $(STAMP)

# The book: every notebook executed in the full profile; warnings are errors.
book: venv
	WORKBOOK_STATIC=1 $(BIN)/jupyter-book build . -W -n --keep-going

# The test suite: lib unit/property tests, hygiene checks, every notebook in the smoke profile.
test: venv
	WORKBOOK_PROFILE=smoke $(BIN)/python -m pytest -q -n 2 --dist loadfile tests --nbmake chapters --nbmake-timeout=600

bench: venv
	$(BIN)/python tools/bench.py

clean:
	rm -rf _build .cache
