# Two commands set up a fresh machine:  `make book`  and  `make test`.
PYTHON ?= python3
# The book's own reference solutions must pass their exercise checks (lib/exercises).
export WORKBOOK_CHECKS := strict
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

MATHJAX := _extra/mathjax/tex-mml-chtml.js
ORT     := _extra/ort/ort.wasm.min.js
# Notebooks executed at once, and torch threads each (tools/execute.py; measured fastest on 2 cores).
JOBS    ?= 2
THREADS ?= 1
EXECUTE  = $(BIN)/python tools/execute.py --jobs $(JOBS) --threads $(THREADS)

.PHONY: venv book test bench student check-html browser clean help

help:
	@echo "make book   - install (into .venv), execute every notebook (full profile), build _build/html"
	@echo "make test   - install, run unit/hygiene tests and every notebook under nbmake (smoke profile)"
	@echo "make bench  - execute every notebook from scratch (full profile), print the results table,"
	@echo "              write _build/results.json and bench/results-<cpu|cuda>.json (run-time notes)"
	@echo "              (make bench ONLY=05,06 for some notebooks; SEEDS=0,1,2: a claim must win on each seed;"
	@echo "               ARGS=--reuse: snapshot the book's own last run; JOBS=1 THREADS=2: other settings)"
	@echo "make student    - copies of every notebook without solutions, in student/"
	@echo "make check-html - build the book (smoke profile) and open every page in headless Chromium"

venv: $(STAMP)

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $(STAMP)

# MathJax is served from the book itself (npm package, pinned), so the book reads offline.
$(MATHJAX):
	mkdir -p .cache/npm _extra
	npm install --no-save --silent --prefix .cache/npm mathjax@3.2.2
	rm -rf _extra/mathjax && cp -r .cache/npm/node_modules/mathjax/es5 _extra/mathjax

# onnxruntime-web for the live playgrounds (lib/live.py), the same way: its WebAssembly-only
# build (the full bundle tries to load a WebGPU module), served from the book's own files.
$(ORT):
	mkdir -p .cache/npm _extra
	npm install --no-save --silent --prefix .cache/npm onnxruntime-web@1.30.0
	rm -rf _extra/ort && mkdir -p _extra/ort
	cd .cache/npm/node_modules/onnxruntime-web/dist && cp ort.wasm.min.js ort-wasm-simd-threaded.mjs ort-wasm-simd-threaded.wasm ../../../../../_extra/ort/

# The book: every notebook executed in the full profile; warnings are errors.
# The notebooks run first, several at once, into the cache the build reads (tools/execute.py);
# the appendix is generated from that same execution; then the book is rendered.
book: venv $(MATHJAX) $(ORT)
	$(BIN)/python tools/nbtool.py sync-repository
	$(EXECUTE) --profile full --cache _build/.jupyter_cache
	$(BIN)/python tools/results_page.py --profile full
	$(BIN)/python tools/gallery.py --profile full --cache _build/.jupyter_cache
	WORKBOOK_STATIC=1 $(BIN)/jupyter-book build . -W -n --keep-going

# The test suite: lib unit/property tests, hygiene checks, every notebook in the smoke profile.
# Sequential on purpose: two kernels starting at once in parallel workers once hung on start-up.
test: venv
	WORKBOOK_PROFILE=smoke $(BIN)/python -m pytest -q tests --nbmake chapters --nbmake-timeout=600

bench: venv
	$(BIN)/python tools/bench.py --jobs $(JOBS) --threads $(THREADS) $(if $(ONLY),--only $(ONLY)) $(if $(SEEDS),--seeds $(SEEDS)) $(ARGS)
	$(BIN)/python tools/results_page.py --profile full

student: venv
	$(BIN)/python tools/nbtool.py sync-repository
	$(BIN)/python tools/student.py student

# Debian's Chromium for the browser test (test tools never download a browser of their own).
browser:
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# The built book in a real browser, network blocked: the book is built in the smoke profile
# into _build/smoke (fast; the page structure is the same as the full build).
check-html: venv $(MATHJAX) $(ORT) browser
	rm -rf _build/smoke _build/records/smoke && mkdir -p _build/smoke
	$(BIN)/python -c "import os, yaml; c = yaml.safe_load(open('_config.yml')); c['execute'].update(cache=os.path.abspath('_build/smoke/.jupyter_cache')); c['sphinx']['local_extensions'] = {k: os.path.abspath(v) for k, v in c['sphinx']['local_extensions'].items()}; yaml.safe_dump(c, open('_build/smoke/_config.yml', 'w'))"
	$(EXECUTE) --profile smoke --cache _build/smoke/.jupyter_cache
	$(BIN)/python tools/results_page.py --profile smoke
	$(BIN)/python tools/gallery.py --profile smoke --cache _build/smoke/.jupyter_cache
	WORKBOOK_PROFILE=smoke WORKBOOK_STATIC=1 $(BIN)/jupyter-book build . -W -n --keep-going --config _build/smoke/_config.yml --path-output _build/smoke
	$(BIN)/python -m pytest -q tests_html

clean:
	rm -rf _build .cache
