# Two commands do everything on a fresh machine:
#   make demo   - create .venv, install analogize, run `analogize demo`
#   make test   - create/update .venv, install analogize with test extras (and Debian's chromium
#                 for the browser tests, through apt-get, when it is missing), run pytest
#
# torch is installed first and pinned, so the package's own `torch>=2.3` requirement is already
# met and pip never swaps in a multi-GB CUDA build. On this project's machines torch==2.13.0 is the
# CPU build on local disk. Elsewhere, point pip at a CPU wheel index through TORCH_PIP_ARGS
# (for example TORCH_PIP_ARGS="--index-url <your CPU wheel index>").

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_PIP_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH)" $(TORCH_PIP_ARGS)
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

demo: $(STAMP)
	$(BIN)/analogize demo --out demo-output

# The browser tests drive Debian's Chromium (Playwright cannot download its own browser here).
$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "the browser tests need Chromium at $(CHROMIUM)"; exit 1; }
	apt-get update -qq && apt-get install -y -qq chromium >/dev/null

test: $(STAMP) $(CHROMIUM)
	$(BIN)/pytest -q

bench: $(STAMP)
	bash benchmarks/fetch_photos.sh
	$(BIN)/analogize bench --methods identity,colormap,unet,pix2pix --shots 20 --out bench-output

clean:
	rm -rf $(VENV) demo-output bench-output
