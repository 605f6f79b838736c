# make demo  — set up, fetch the weights and the sample clip, edit it into demo-out/
#              (offline: make demo WEIGHTS_FROM=DIR installs them from a folder instead, README "Weights")
# make test  — set up (with chromium for the app's browser test) and run the whole test suite
# make bench — the benchmark (README "Benchmarks", benchmarks/RESULTS.md)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
DEMO_PRESET ?= sarcastic

.PHONY: setup ffmpeg chromium demo test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@# torch first, so that the project's `torch>=...` never pulls a multi-GB CUDA build on a CPU machine:
	@# a local CPU wheel (pip's find-links) if there is one, else the CPU index where no NVIDIA GPU is present.
	$(BIN)/pip install -q --no-index --no-deps "$(TORCH)" 2>/dev/null \
	  || { command -v nvidia-smi >/dev/null 2>&1 && $(BIN)/pip install -q "$(TORCH)"; } \
	  || $(BIN)/pip install -q "$(TORCH)" --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple
	$(BIN)/pip install -q -e '.[test,ray,app,app-test]'
	@touch $@

setup: $(VENV)/.installed ffmpeg

ffmpeg:
	@command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || { \
	  echo "installing ffmpeg"; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; \
	  elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; \
	  elif command -v brew >/dev/null; then brew install ffmpeg; \
	  else echo "error: no ffmpeg, and no apt-get or brew to install it: install ffmpeg (with ffprobe) and retry"; exit 1; fi; }

# the app's browser test drives Debian's chromium through its chromium-driver (Selenium downloads no browser)
chromium:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || { \
	  echo "installing chromium and chromium-driver (the app's browser test)"; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "warning: no chromium and no apt-get to install it: the app's browser test will be skipped"; fi; }

demo: setup
	@$(BIN)/cmet download-weights $(if $(WEIGHTS_FROM),--from "$(WEIGHTS_FROM)") --only edtalk --only connector --only bank --only sample-video
	@mkdir -p demo-out
	@$(BIN)/cmet edit "$$($(BIN)/python -c 'from cmet_cli import weights as w; print(w.installed_path(w.load_lock()["sample-video"]))')" \
	  -o demo-out/W009_038_$(DEMO_PRESET).mp4 --preset $(DEMO_PRESET) --overwrite
	@echo "$(CURDIR)/demo-out/W009_038_$(DEMO_PRESET).mp4"

test: setup chromium
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python -m benchmarks.bench_edit --frames 50 --device cpu

clean:
	rm -rf demo-out .pytest_cache
