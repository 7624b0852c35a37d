#!/usr/bin/env bash
# The reliability campaign, long version: load, faults, fuzzing and isolation attacks, with
# the figures written to benchmarks/results/reliability.md (RELIABILITY.md shows them).
#
#   bash scripts/reliability.sh                 # 60 s load runs, 5,000 fuzz inputs per target
#   SECONDS_PER_RUN=10 FUZZ_EXAMPLES=500 bash scripts/reliability.sh   # quicker
#
# The short version of the same tests runs in CI (bash scripts/test.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}

bash scripts/services.sh
report=$(mktemp)
export LLMCACHE_RELIABILITY_REPORT=$report
export LLMCACHE_RELIABILITY_SECONDS=${SECONDS_PER_RUN:-60}
export LLMCACHE_FUZZ_EXAMPLES=${FUZZ_EXAMPLES:-5000}
started=$(date -u +%Y-%m-%dT%H:%MZ)
"$PYTHON" -m pytest -p no:cacheprovider -q tests/reliability tests/unit/test_fuzz_decoders.py \
    tests/unit/test_key_and_codec_properties.py tests/integration/test_redis_faults.py "$@"
"$PYTHON" scripts/reliability_table.py "$report" "$started" >benchmarks/results/reliability.md
rm -f "$report"
cat benchmarks/results/reliability.md
