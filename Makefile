SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
# Two entry points: `make run` (set up, generate the quickstart dataset) and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
OUT    ?= runs/quickstart
export NO_ALBUMENTATIONS_UPDATE := 1
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: run test lint catalog clean venv system-deps

run: $(STAMP)
	$(BIN)/augforge generate pipelines/quickstart.yaml --out $(OUT)
	$(BIN)/augforge preview datasets/samples/animals/chelsea.png --ops gaussian_noise,contrast,jpeg_compression,pixelate -o $(OUT)/preview.png
	@echo "shards:   $(OUT)/<op>/<severity>/shard-*.tar"
	@echo "manifest: $(OUT)/manifest.json"
	@echo "preview:  $(OUT)/preview.png"

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check augforge tests benchmarks

venv: $(STAMP)

# open3d needs Debian's libusb at import time; install it when we can (root) and it is missing.
system-deps:
	@if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    echo "installing libusb-1.0-0 (needed by open3d)"; \
	    (apt-get install -y -q libusb-1.0-0 >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q libusb-1.0-0 >/dev/null)); \
	  else echo "warning: libusb-1.0-0 is missing; 'import open3d' will fail (apt-get install libusb-1.0-0)"; fi; \
	fi

$(STAMP): pyproject.toml
	@$(MAKE) -s system-deps
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip 2>&1 | { grep -v 'is ignored' || true; }
	@# torch first, pinned: the CPU build on this disk; unpinned would pull a multi-GB CUDA build.
	$(PIP) install torch==2.13.0 2>&1 | { grep -v 'is ignored' || true; }
	$(PIP) install -e '.[all,dev]' 2>&1 | { grep -v 'is ignored' || true; }
	@# imagecorruptions drags in opencv-python, which overwrites albumentations' headless cv2.
	$(PIP) uninstall -y opencv-python 2>&1 | { grep -v 'is ignored' || true; }
	$(PIP) install --no-deps --force-reinstall opencv-python-headless 2>&1 | { grep -v 'is ignored' || true; }
	$(BIN)/python -c "import torch, kornia, albumentations, webdataset, distributed, cv2, augforge" 
	@rm -f $(VENV)/.installed-*
	@touch $@

catalog: $(STAMP)
	$(BIN)/augforge catalog

clean:
	rm -rf $(VENV) runs .pytest_cache
