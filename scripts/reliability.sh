#!/usr/bin/env bash
# The reliability campaign, long version: load, faults, fuzzing, properties and isolation
# attacks, with the figures written to benchmarks/results/reliability.md and into
# RELIABILITY.md ("Figures of the last run").
#
#   bash scripts/reliability.sh                 # 60 s load runs, 5,000 fuzz inputs per target
#   SECONDS_PER_RUN=10 FUZZ_EXAMPLES=500 bash scripts/reliability.sh   # quicker
#
# The short version of the same tests runs in CI (bash scripts/test.sh). Extra arguments go
# to pytest. The figures are written even when a test fails (its row says so); the script
# then exits with pytest's status.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}

bash scripts/services.sh
report=$(mktemp)
trap 'rm -f "$report"' EXIT
export LLMCACHE_RELIABILITY_REPORT=$report
export LLMCACHE_RELIABILITY_SECONDS=${SECONDS_PER_RUN:-60}
export LLMCACHE_FUZZ_EXAMPLES=${FUZZ_EXAMPLES:-5000}
command="bash scripts/reliability.sh${*:+ $*}"
if [[ -n ${SECONDS_PER_RUN:-} || -n ${FUZZ_EXAMPLES:-} ]]; then
    command="SECONDS_PER_RUN=$LLMCACHE_RELIABILITY_SECONDS FUZZ_EXAMPLES=$LLMCACHE_FUZZ_EXAMPLES $command"
fi
started=$(date -u +%Y-%m-%dT%H:%MZ)
status=0
"$PYTHON" -m pytest -p no:cacheprovider -q tests/reliability tests/unit/test_fuzz_decoders.py \
    tests/unit/test_key_and_codec_properties.py tests/langchain/test_lc_roundtrip_properties.py \
    tests/litellm/test_ll_roundtrip_properties.py tests/integration/test_redis_faults.py \
    tests/integration/test_redis_cluster_faults.py "$@" || status=$?
"$PYTHON" scripts/reliability_table.py "$report" "$started" "$command" \
    >benchmarks/results/reliability.md
"$PYTHON" scripts/reliability_table.py --into RELIABILITY.md benchmarks/results/reliability.md
cat benchmarks/results/reliability.md
exit "$status"
