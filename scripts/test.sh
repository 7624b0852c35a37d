#!/usr/bin/env bash
# Everything CI checks, runnable on a fresh machine: install the dev extra into the current
# Python, start the servers (scripts/services.sh), then ruff, ruff format, mypy and pytest.
#
#   bash scripts/test.sh                 # the whole suite, every notebook executed
#   bash scripts/test.sh tests/unit -x   # extra arguments go to pytest
#   bash scripts/test.sh notebooks       # only the notebooks
#
# Exits non-zero if any step fails; every check runs even after an earlier one failed, so one
# CI run shows all problems. pytest's "no tests collected" (exit code 5) is a failure too.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python

step() { printf '\n==> %s\n' "$*"; }

step "installing torch (the CPU build on disk) before anything that depends on it"
# Without torch installed first, sentence-transformers would pull the newest torch with several
# GB of CUDA packages; 2.13.0 is the CPU build this machine holds locally.
"$PYTHON" -c 'import torch' >/dev/null 2>&1 ||
    PIP_BREAK_SYSTEM_PACKAGES=1 "$PYTHON" -m pip install --disable-pip-version-check -q torch==2.13.0

step "installing llmcache with the dev extra into $("$PYTHON" -c 'import sys; print(sys.prefix)')"
# A distribution's own Python (PEP 668) refuses pip installs unless told; a venv ignores this.
PIP_BREAK_SYSTEM_PACKAGES=1 "$PYTHON" -m pip install --disable-pip-version-check -q -e ".[dev]"

step "starting services"
bash scripts/services.sh

failed=()
check() { # name, command...
    local name=$1
    shift
    step "$name"
    local rc=0
    "$@" || rc=$?
    if [ "$name" = "pytest" ] && [ "$rc" = 5 ]; then
        echo "pytest collected no tests: that is a failure, not a pass"
    fi
    if [ "$rc" != 0 ]; then
        failed+=("$name (exit $rc)")
    fi
}

check "ruff check" "$PYTHON" -m ruff check .
check "ruff format" "$PYTHON" -m ruff format --check .
check "mypy" "$PYTHON" -m mypy
# --nbmake: each notebooks/*.ipynb (a testpath, like tests/) runs in a fresh kernel as one test,
# with a time limit of its own (notebooks/conftest.py). Paths given as arguments narrow the run
# as usual: `bash scripts/test.sh tests/unit -x` executes no notebook.
check "pytest" "$PYTHON" -m pytest -p no:cacheprovider -ra --nbmake "$@"

if [ "${#failed[@]}" -gt 0 ]; then
    printf '\nFAILED: %s\n' "${failed[@]}"
    exit 1
fi
printf '\nall checks passed\n'
