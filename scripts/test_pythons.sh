#!/usr/bin/env bash
# The suites on the other Pythons pyproject.toml's requires-python admits: the oldest (3.10)
# and the newest (3.13), each in a venv of its own (kept outside the checkout, under
# ~/.cache/llmcache/venvs, where ruff, mypy and pytest never look) with the `tests` extra.
#
#   bash scripts/test_pythons.sh                  # 3.10 and 3.13
#   PYTHONS="3.12" bash scripts/test_pythons.sh   # others
#
# What runs: the unit, LangChain and LiteLLM suites and the SQL and Redis tier suites, against
# the servers scripts/services.sh starts (run scripts/test.sh first, or services.sh). What does
# not: the semantic tier (its MiniLM embedder needs torch, whose CPU build on this kind of
# machine is for Python 3.11 only; elsewhere pip would download several GB of CUDA) and the
# README's snippets (one of them uses it); scripts/test.sh runs both on the main Python.
# A Python this machine does not have is reported and left out; a failure fails the script.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHONS=${PYTHONS:-"3.10 3.13"}
VENVS=${VENVS:-${XDG_CACHE_HOME:-$HOME/.cache}/llmcache/venvs}
SUITES=(tests/unit tests/langchain tests/litellm tests/integration/test_tier_contract.py
    tests/integration/test_sql_tier.py tests/integration/test_redis_tier.py)

find_python() { # version -> an interpreter of that version, or nothing
    local version=$1 candidate
    for candidate in "python$version" "$HOME/.pyenv/versions/$version"*/bin/python; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            [ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$version" ]; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

failed=()
ran=0
for version in $PYTHONS; do
    printf '\n==> Python %s\n' "$version"
    if ! python=$(find_python "$version"); then
        echo "Python $version is not on this machine: left out"
        continue
    fi
    venv="$VENVS/py$version"
    if ! { [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"; } ||
        ! "$venv/bin/python" -m pip install --disable-pip-version-check -q -e ".[tests]"; then
        failed+=("Python $version (could not install .[tests])")
        continue
    fi
    rc=0
    ran=$((ran + 1))
    "$venv/bin/python" -m pytest -p no:cacheprovider -q -ra "${SUITES[@]}" \
        -k "not semantic and not readme_python_snippets" || rc=$?
    [ "$rc" = 0 ] || failed+=("Python $version (pytest exit $rc)")
done

if [ "${#failed[@]}" -gt 0 ]; then
    printf '\nFAILED: %s\n' "${failed[@]}"
    exit 1
fi
if [ "$ran" = 0 ]; then
    printf '\nnone of Python %s is on this machine: nothing ran\n' "$PYTHONS"
else
    printf '\nPython %s: passed\n' "$PYTHONS"
fi
